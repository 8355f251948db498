package scenarios

import (
	"errors"
	"fmt"
	"strings"
)

// ErrUnknownScenario is returned (wrapped) by Load when the name is neither
// an embedded scenario nor a readable file.
var ErrUnknownScenario = errors.New("unknown scenario")

// Problem is one thing wrong with a scenario file, at a 1-based line and
// column of that file (0 when the position is unknown).
type Problem struct {
	File      string
	Line, Col int
	// Path is the YAML path of the offending value, such as
	// "devices[0].count"; empty for problems with the document itself.
	Path string
	Msg  string
}

// String formats p as "file:line:col: path: message", the form editors and
// terminals turn into links.
func (p Problem) String() string {
	var b strings.Builder
	b.WriteString(p.File)
	if p.Line > 0 {
		fmt.Fprintf(&b, ":%d:%d", p.Line, p.Col)
	}
	b.WriteString(": ")
	if p.Path != "" {
		b.WriteString(p.Path)
		b.WriteString(": ")
	}
	b.WriteString(p.Msg)
	return b.String()
}

// ParseError lists every problem found in a scenario file, in file order.
type ParseError struct {
	File     string
	Problems []Problem
}

// Error implements error: one problem per line.
func (e *ParseError) Error() string {
	lines := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}

// Lines returns the problems formatted one per element.
func (e *ParseError) Lines() []string {
	lines := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		lines[i] = p.String()
	}
	return lines
}
