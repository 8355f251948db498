// Package events keeps a hub's recent device events — device-to-cloud
// messages with their properties, connects and disconnects, direct method
// calls and answers, desired patches and the reported patches that follow
// them, firmware phases — in bounded in-memory rings, and hands them to
// live watchers.
//
// Recording an event takes one short lock and copies a small struct; it
// never allocates for a message body within MaxBody and never waits for a
// watcher: each watcher has a bounded channel, and an event that does not
// fit is dropped and counted.
package events
