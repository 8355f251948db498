package hubjobs_test

import (
	"testing"

	"github.com/fleetsim/fleetsim/internal/testkit"
)

// TestMain fails the package when a goroutine outlives the tests: Run must
// own and wait for everything it starts.
func TestMain(m *testing.M) { testkit.VerifyNoLeaks(m) }
