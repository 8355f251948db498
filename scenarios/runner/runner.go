// Package runner plays a scenario: it runs the hub (hubjobs' composition
// root, in this process) or reaches a remote hub through its service REST
// API, brings the simulated fleet online, plays the scenario's timeline,
// streams progress, and judges the scenario's expectations in a final Report.
package runner
