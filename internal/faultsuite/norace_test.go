//go:build !race

package faultsuite

// raceEnabled: the suite runs without the race detector, and so does the
// monitor it builds.
const raceEnabled = false
