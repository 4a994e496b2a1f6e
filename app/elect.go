package app

import (
	"cmp"
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"strings"

	"github.com/jackc/pgx/v5"
	"golang.org/x/sync/errgroup"

	"github.com/crashmonitor/monitor/election"
	"github.com/crashmonitor/monitor/queue"
)

// newInstance returns this process as a monitor of the election: its host,
// its pid, and an id that no other run shares (a restart is a new instance).
func newInstance() queue.Instance {
	host, _ := os.Hostname()
	pid := os.Getpid()
	return queue.Instance{
		ID:   fmt.Sprintf("%s:%d:%s", host, pid, strings.ToLower(rand.Text()[:8])),
		Host: host,
		PID:  pid,
	}
}

// sessionConfig parses the connection settings of the election's session:
// databaseSessionURL, or the database settings when it is empty. Settings
// that cannot be parsed give a *SettingsError.
func (a *App) sessionConfig() (*pgx.ConnConfig, error) {
	cfg, err := pgx.ParseConfig(a.cfg.Load().SessionConnString())
	if err != nil {
		return nil, &SettingsError{Err: err}
	}
	cfg.ConnectTimeout = connectTimeout
	// It shows in pg_stat_activity under a name of its own, with the pid
	// of the monitor it belongs to.
	cfg.RuntimeParams["application_name"] = fmt.Sprintf("%s election %d",
		cmp.Or(cfg.RuntimeParams["application_name"], "monitor"), os.Getpid())
	return cfg, nil
}

// newElector returns the elector of this process, whose session is a
// connection of its own with the settings scfg, apart from the loops' pool.
func (a *App) newElector(scfg *pgx.ConnConfig) *election.Elector {
	return election.New(election.Config{
		Instance: newInstance(),
		Connect: func(ctx context.Context) (*queue.LeaseSession, error) {
			conn, err := pgx.ConnectConfig(ctx, scfg.Copy())
			if err != nil {
				return nil, fmt.Errorf("connect the election session: %w", err)
			}
			return queue.NewLeaseSession(conn), nil
		},
		Logger:  a.loggerFor("election"),
		Figures: a.figures,
		// The session is a direct connection, as the listener's is: an
		// outage of it is the listener's tracker's (the loops' one unless
		// databaseURL goes through a pooler).
		Outage: a.listenOutage,
	})
}

// lead returns what runs the loops during a term of office: the scanner,
// priority and cleanup loops on store fenced by the term's lease, until the
// term ends. A fenced write that finds the lease gone stops them at once and
// has the elector check the lease.
func (a *App) lead(store *queue.Store, el *election.Elector) election.LeadFunc {
	return func(ctx context.Context, lease queue.Lease) error {
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		fenced := store.Fenced(lease, func() {
			cancel()
			el.Recheck()
		})
		g, gctx := errgroup.WithContext(ctx)
		a.startLoops(gctx, g, fenced)
		err := g.Wait()
		a.figures.LoopsStopped()
		return err
	}
}
