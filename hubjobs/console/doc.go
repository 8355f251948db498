// Package console is the hub's web console: a few hand-written pages (fleet,
// device, jobs, hub) embedded in the binary and served on the hub's HTTPS
// listener at "/" and "/console/", with their JSON API and a server-sent
// event stream of aggregates. It reaches the hub only through the
// interfaces it declares (Devices, Jobs, Counters); hubjobs wires it.
//
// Access needs the hub's credentials: a one-time login URL minted at start,
// or a service connection string checked against the shared access
// policies. Sessions are HttpOnly, Secure, SameSite=Strict cookies; every
// state-changing request needs the session's CSRF token in a header and a
// same-origin Origin; a policy without ServiceConnect sees the console
// read-only and its writes are refused here, not only in the page.
package console
