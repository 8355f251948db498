// Package runner wires fleetsim together — broker, registry, jobs engine,
// REST API and the simulated fleet — in one errgroup, plays a scenario's
// timeline, streams progress, and judges the scenario's expectations in a
// final Report.
package runner
