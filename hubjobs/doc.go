// Package hubjobs is fleetsim's hub: its composition root builds the broker,
// the device registry and its store, the jobs engine and its store, and the
// service REST API, and runs them together. The parts live in the packages
// below it (jobs, query, registry, regstore, jobstore, restapi).
package hubjobs
