package apmon

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/crashmonitor/monitor/internal/loop"
)

// Bounds of the configuration pages.
const (
	// PageRecheck is how often a configuration page is read again, as the
	// libraries re-read theirs.
	PageRecheck = 10 * time.Minute
	// pageRetry is how soon a page whose read failed is tried again.
	pageRetry = time.Minute
	// pageTimeout bounds one read of a page, as the libraries' 5 s.
	pageTimeout = 5 * time.Second
	// pageMaxBytes bounds a page's size.
	pageMaxBytes = 1 << 20
)

// Pages reads the configuration pages of a destination list and keeps the
// last good list of each: a page is read when it first appears, then every
// PageRecheck; a failed read is logged once (and its end once) and the last
// good list stays. It is used by one goroutine at a time.
type Pages struct {
	client *http.Client
	logger *slog.Logger
	now    func() time.Time
	pages  map[string]*page // by URL
}

// page is what is known of one configuration page.
type page struct {
	dests   []Destination // the last good list
	next    time.Time     // when to read it again
	bad     string        // the unusable lines of the last read, as logged
	failing loop.Episode
}

// NewPages returns the reader of pages, logging to logger; now is the clock
// (time.Now when nil).
func NewPages(logger *slog.Logger, now func() time.Time) *Pages {
	if now == nil {
		now = time.Now
	}
	return &Pages{client: &http.Client{Timeout: pageTimeout}, logger: logger, now: now, pages: map[string]*page{}}
}

// Destinations returns the services of the pages at urls: each page that
// is due is read first (all of them at once, each within 5 s), and the last
// good lists are joined. Pages no longer in urls are forgotten.
func (p *Pages) Destinations(ctx context.Context, urls []string) []Destination {
	for u := range p.pages {
		if !slices.Contains(urls, u) {
			delete(p.pages, u)
		}
	}
	now := p.now()
	var due []string
	for _, u := range urls {
		pg := p.pages[u]
		if pg == nil {
			pg = &page{}
			p.pages[u] = pg
		}
		if !now.Before(pg.next) && !slices.Contains(due, u) {
			due = append(due, u)
		}
	}
	type result struct {
		dests []Destination
		bad   []string
		err   error
	}
	results := make([]result, len(due))
	var wg sync.WaitGroup
	for i, u := range due {
		wg.Go(func() {
			r := &results[i]
			r.dests, r.bad, r.err = p.read(ctx, u)
		})
	}
	wg.Wait()
	for i, u := range due {
		p.update(u, p.pages[u], results[i].dests, results[i].bad, results[i].err)
	}
	var all []Destination
	for _, u := range urls {
		all = append(all, p.pages[u].dests...)
	}
	return all
}

// update records the outcome of a read of the page at u.
func (p *Pages) update(u string, pg *page, dests []Destination, bad []string, err error) {
	masked := Destination{URL: u}.Masked()
	log := p.logger.With("page", masked)
	if err != nil {
		pg.next = p.now().Add(pageRetry)
		if pg.failing.Begin() {
			log.Warn("cannot read the ApMon configuration page; its last good list stays", "error", err, "destinations", len(pg.dests))
		}
		return
	}
	pg.next = p.now().Add(PageRecheck)
	if pg.failing.End() {
		log.Info("the ApMon configuration page reads again")
	}
	if b := strings.Join(bad, "; "); b != "" && b != pg.bad {
		log.Warn("ApMon configuration page has lines that are not destinations; they are skipped", "lines", b)
		pg.bad = b
	} else if b == "" {
		pg.bad = ""
	}
	if !slices.Equal(dests, pg.dests) {
		names := make([]string, len(dests))
		for i, d := range dests {
			names[i] = d.Masked()
		}
		log.Info("ApMon destinations read from the configuration page", "destinations", strings.Join(names, ", "))
	}
	pg.dests = dests
}

// read fetches and parses the page at u.
func (p *Pages) read(ctx context.Context, u string) ([]Destination, []string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, nil, err
	}
	resp, err := p.client.Do(req)
	if err != nil {
		return nil, nil, err // http.Client leaves a password out of its errors
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, nil, fmt.Errorf("HTTP status %s", resp.Status)
	}
	return ParsePage(io.LimitReader(resp.Body, pageMaxBytes))
}
