// Package faultsuite holds the monitor's fault-injection suite and its soak,
// both in TestFaults (the package's tests; this file only documents them).
//
// For a number of rounds, or for the soak's duration, simulated processors
// (internal/procsim) work, some of them crashing and new ones registering;
// collectors write pairs into the standard and deferred trees
// (crashstore's NewEntry, some slowly, a few never finished); priority
// requests arrive (for deferred crashes, queued ones, ones that never
// existed, and hostile strings). Meanwhile the suite injects faults at random
// instants: `monitor run` killed with SIGKILL and restarted (also while
// PostgreSQL is down, and again right after its start), PostgreSQL stopped
// ("fast" or "immediate") and started again, the active monitor killed so
// that a standby takes over (with several monitors), processors crashed or
// restarted. After each round it checks that the pipeline resumed; at the
// end it stops injecting, lets everything drain, and an invariant checker
// proves that every crash written is in exactly one right place, processed
// exactly once. The soak also samples the memory, goroutines and open files
// of a monitor that lives through it and fails when they keep growing.
//
// A seed (printed) replays the same schedule of faults and of written
// crashes; the interleaving with the processes' own timing differs from run
// to run. The README's "Fault-injection suite" says how to run it.
package faultsuite
