package runner_test

import (
	"testing"

	"github.com/fleetsim/fleetsim/internal/testkit"
)

// TestMain fails the package when a goroutine outlives the tests: Run and
// HostFleet must own and wait for everything they start.
func TestMain(m *testing.M) { testkit.VerifyNoLeaks(m) }
