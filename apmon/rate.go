package apmon

import "time"

// historyWeight is the weight of the past in the smoothed send rate,
// exp(-5/60), as the C, C++ and Java libraries have it (the Python one rounds
// it to 0.92).
const historyWeight = 0.92004441462932322925

// rateLimit is the ApMon libraries' rule (shouldSend) that keeps a sender
// near at most max datagrams a second to a destination. It keeps a smoothed
// rate of the datagrams sent in past seconds and counts those of the current
// second; from the two it estimates the rate, truncated to an integer as the
// C and Java libraries do. Below 90% of max a datagram always goes; from there
// up to max it is dropped with a probability that rises towards max (one in
// max/10 draws decides); at max and above it is always dropped. The libraries
// divide by max/10, which is zero for a max below 10 (the C library then
// crashes, the Java one throws): for those the band is empty and a datagram
// goes exactly while the estimate is below max, which is the limit of the
// rule as the band shrinks.
type rateLimit struct {
	max int
	// intn returns a random integer in [0, n); tests set it.
	intn func(n int) int

	second  int64   // the current second (Unix time)
	sent    int     // datagrams sent in the current second
	dropped int     // datagrams dropped in the current second
	past    float64 // the smoothed rate of the seconds before
}

// allow reports whether a datagram may be sent at now, and counts it as
// sent or dropped.
func (r *rateLimit) allow(now time.Time) bool {
	sec := now.Unix()
	if sec != r.second {
		// A new second: fold the last one into the history, its count
		// spread over the seconds since (the libraries divide by the gap
		// but weigh the history once, whatever the gap).
		if gap := sec - r.second; gap > 0 {
			r.past = historyWeight*r.past + (1-historyWeight)*float64(r.sent)/float64(gap)
		}
		r.second, r.sent, r.dropped = sec, 0, 0
	}
	estimate := int(r.past*historyWeight + float64(r.sent)*(1-historyWeight))
	send := true
	if band := r.max / 10; estimate > band { // the libraries' max - (max - max/10)
		if band == 0 {
			send = estimate < r.max
		} else {
			send = r.intn(band) < r.max-estimate
		}
	}
	if send {
		r.sent++
	} else {
		r.dropped++
	}
	return send
}
