//go:build race

package faultsuite

// raceEnabled: the suite runs under the race detector, and so does the
// monitor it builds.
const raceEnabled = true
