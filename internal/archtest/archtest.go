// Package archtest enforces fleetsim's architecture: the import rules of the
// package table in the README and a package doc comment on every package. It
// has no code of its own; its test runs `go list` over the module under plain
// `go test ./...`.
package archtest
