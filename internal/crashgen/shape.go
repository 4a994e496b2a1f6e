package crashgen

import (
	"fmt"
	"time"
)

// A production inbox after an outage is wide and shallow: many days of
// one-minute slots, every slot used by every collector, so that most webhead
// directories (<day>/date/HH/MM/<webhead>_0) hold one or two pairs. The
// helpers below give the Options that spread a generation that way: pair i
// goes to webhead i % n and the submissions are evenly spaced, so each slot
// receives about n × perLeaf pairs, perLeaf in each webhead's directory.

// WebheadNames returns n collector host names, webhead01 to webheadNN.
func WebheadNames(n int) []string {
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("webhead%02d", i+1)
	}
	return names
}

// SpreadFor returns the Spread over which count pairs received by webheads
// collectors fill each webhead directory of the date branch with about
// perLeaf pairs: count / (webheads × perLeaf) one-minute slots. It returns 0
// (every pair in one slot) when the arguments are not positive.
func SpreadFor(count, webheads int, perLeaf float64) time.Duration {
	if count <= 0 || webheads <= 0 || perLeaf <= 0 {
		return 0
	}
	slots := float64(count) / (float64(webheads) * perLeaf)
	return time.Duration(slots * float64(time.Minute)).Round(time.Second)
}
