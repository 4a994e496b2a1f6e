package apmon

import (
	"testing"
	"time"
)

// burst asks r for n datagrams within the second at t and returns how many
// it let through.
func burst(r *rateLimit, t time.Time, n int) int {
	sent := 0
	for range n {
		if r.allow(t) {
			sent++
		}
	}
	return sent
}

// TestRateRuleBands: from a quiet start, the estimate of the current second
// is int(sent * (1 - exp(-5/60))), 0.0799556 a datagram. At 20 a second
// every datagram goes while the estimate is at most 18 (below 90% of the
// rate, whatever the draw), goes or not by the draw at 19, and none goes at
// 20: 238 go whatever the draws, 251 at most.
func TestRateRuleBands(t *testing.T) {
	t.Parallel()
	at := time.Unix(1767225600, 0)
	for _, tc := range []struct {
		name string
		draw func(n int) int // the random draw in [0, n)
		want int
	}{
		{"LuckiestDraws", func(int) int { return 0 }, 251},
		{"UnluckiestDraws", func(n int) int { return n - 1 }, 238},
	} {
		r := &rateLimit{max: 20, intn: tc.draw}
		if got := burst(r, at, 1000); got != tc.want {
			t.Errorf("%s: %d of 1000 sent in one second, want %d", tc.name, got, tc.want)
		}
	}

	// The estimate at each step decides as the libraries' shouldSend:
	// always below 0.9*rate, never at the rate or above.
	r := &rateLimit{max: 20, intn: func(n int) int { return n - 1 }}
	for i := range 300 {
		estimate := int(float64(i) * (1 - historyWeight))
		sent := r.allow(at)
		switch {
		case estimate <= 18 && !sent:
			t.Fatalf("datagram %d dropped at estimate %d, below 90%% of 20", i, estimate)
		case estimate >= 20 && sent:
			t.Fatalf("datagram %d sent at estimate %d, at the rate", i, estimate)
		}
		if !sent {
			break // the estimate counts sent datagrams only: it stays
		}
	}
}

// TestRateRuleHistory: a second's count joins the smoothed history, weighed
// 1-exp(-5/60) and spread over the seconds since; a sender that keeps to
// the rate converges to it.
func TestRateRuleHistory(t *testing.T) {
	t.Parallel()
	at := time.Unix(1767225600, 0)
	r := &rateLimit{max: 20, intn: func(n int) int { return n - 1 }}
	first := burst(r, at, 1000) // 238
	// The next second starts from the history of the first: past =
	// 238*0.0799556 = 19.03, weighed again by exp(-5/60) in the estimate:
	// 17.51 + 0.0799556 a datagram, which stays below 19 for 19 of them.
	if got := burst(r, at.Add(time.Second), 1000); got != 19 {
		t.Errorf("second after a burst of %d: %d sent, want 19", first, got)
	}
	// Eleven quiet seconds later: the libraries fold the last second in
	// once, spread over the gap (19/11), and weigh the history once, not
	// once a second: past = 0.92*19.03 + 0.08*19/11 = 17.65, and 35 go.
	if got := burst(r, at.Add(12*time.Second), 1000); got != 35 {
		t.Errorf("after a quiet spell: %d sent, want 35", got)
	}
	// A steady 15 a second never meets the rule.
	steady := &rateLimit{max: 20, intn: func(n int) int { return n - 1 }}
	for s := range 600 {
		if got := burst(steady, at.Add(time.Duration(s)*time.Second), 15); got != 15 {
			t.Fatalf("steady 15/s: second %d let %d through", s, got)
		}
	}
	// A steady 30 a second is held near 20.
	over := &rateLimit{max: 20, intn: func(n int) int { return n - 1 }}
	total := 0
	for s := range 600 {
		n := burst(over, at.Add(time.Duration(s)*time.Second), 30)
		if s >= 300 {
			total += n
		}
	}
	if avg := float64(total) / 300; avg < 17 || avg > 21 {
		t.Errorf("steady 30/s: %.1f a second let through, want about 20", avg)
	}
}

// TestRateRuleBelowTen: the libraries divide by max/10, zero below 10 (the
// C one crashes there). The band is then empty: a datagram goes exactly
// while the estimate is below the rate, with no draw.
func TestRateRuleBelowTen(t *testing.T) {
	t.Parallel()
	at := time.Unix(1767225600, 0)
	for rate, want := range map[int]int{1: 13, 2: 26, 5: 63, 9: 113} {
		r := &rateLimit{max: rate, intn: func(int) int { panic("no draw below 10") }}
		if got := burst(r, at, 1000); got != want {
			t.Errorf("rate %d: %d sent in one second, want %d", rate, got, want)
		}
	}
}
