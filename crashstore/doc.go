// Package crashstore owns the on-disk crash storage trees of Socorro-style
// collectors: crash ids and their dates, the daily and flat layouts, the
// inbox walk, lookups, and removing pairs. It is pure file-system code: it
// knows nothing about the database and has no logging policy (malformed
// things are handed to Options.Problem).
//
// A collector writes each crash as <id>.json and <id>.dump in a directory of
// the name branch, plus two relative symlinks: <name dir>/<id> pointing at a
// webhead directory of the date branch, and <webhead dir>/<id> (the inbox
// link) pointing back at the name directory. The date branch is the
// monitor's inbox, walked in submission order:
//
//	daily: <root>/YYYYMMDD/name/4d/d2/<id>.json, .dump, <id> -> ../../../date/12/05/web1_0
//	       <root>/YYYYMMDD/date/12/05/web1_0/<id> -> ../../../../name/4d/d2
//	flat:  <root>/name/4d/d2/<id>.json, .dump, <id> -> ../../../date/2009/09/28/12/05/web1_0
//	       <root>/date/2009/09/28/12/05/web1_0/<id> -> ../../../../../../../name/4d/d2
//
// The monitor's side is Walk (or EntryAt for a link a watcher saw), Complete
// to tell a pair still being written, RemoveLinks once the job row is
// committed, PruneDateDirs for emptied slots, Lookup by id, and, once a job
// is finished, ArchivePair into an archive tree (saveSuccessfulMinidumpsTo,
// saveFailedMinidumpsTo: same layout, no links) or RemovePair.
// NewEntry and CreateLinks do what a collector does, for tools and tests.
// They stay in this package although the monitor never calls them: they are
// the layout's other half (the same path rules, overflow directories and
// modes), and whatever stands in for collectors must write exactly the
// trees the monitor reads, which one package defining both guarantees.
//
// A Store holds no state about the tree, so it is safe for concurrent use
// and several processes (collectors, the monitor) may share a tree. Times are
// UTC. Paths are only ever built from ids that pass ValidID.
package crashstore
