// Package app is the running monitor. An [App] logs its effective settings,
// connects to the jobs database (retrying until it answers), checks that the
// schema is the one this build expects, builds the crash storage trees and
// runs the scanner, priority and cleanup loops together with the
// configuration watcher until its context is done; then it stops them,
// waiting at most 15 seconds. [App.Reload] re-reads the configuration file,
// as an edit of the file does.
//
// Signals, flags and exit codes are the caller's: cmd/monitor turns SIGTERM
// and SIGINT into the end of Run's context and SIGHUP into Reload, and
// end-to-end tests run an App in-process. [OpenPool] and [ConnectOnce] serve
// the short-lived commands as well.
package app
