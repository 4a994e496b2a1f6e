// Package app is the running monitor. An [App] logs its effective settings,
// connects to the jobs database (retrying until it answers), checks that the
// schema is the one this build expects, and runs the configuration watcher
// and the election (package election) until its context is done; then it
// stops them, waiting at most 15 seconds. [App.Reload] re-reads the
// configuration file, as an edit of the file does.
//
// Several monitors may share one database and storageRoot: only the one that
// holds the lease builds the crash storage trees and runs the scanner,
// priority and cleanup loops, on a store fenced by the lease of its term;
// the others stand by with their HTTP server up, and take over when it stops,
// dies or loses its election session.
//
// Under a service manager (NOTIFY_SOCKET set, as systemd does for
// Type=notify) the App says what it does through the notify protocol:
// READY=1 once its loops run, STATUS= lines, RELOADING=1 and READY=1 around
// each reload, STOPPING=1, and WATCHDOG=1 pings (when WATCHDOG_USEC is set)
// only while every loop makes progress. Without it nothing is sent.
//
// Signals, flags and exit codes are the caller's: cmd/monitor turns SIGTERM
// and SIGINT into the end of Run's context and SIGHUP into Reload, and
// end-to-end tests run an App in-process. [OpenPool] and [ConnectOnce] serve
// the short-lived commands as well.
package app
