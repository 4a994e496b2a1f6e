package app

import (
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/crashmonitor/monitor/config"
)

// TestPoolsBehindAPooler: with databaseSessionURL set (databaseURL goes
// through a transaction pooler) the loops' pool keeps no prepared
// statements, and what needs a session goes to databaseSessionURL; without
// it, everything goes to databaseURL with pgx's defaults.
func TestPoolsBehindAPooler(t *testing.T) {
	t.Parallel()
	const (
		pooler = "postgres://monitor@127.0.0.1:6432/socorro?sslmode=disable"
		direct = "postgres://monitor@127.0.0.1:5432/socorro?sslmode=disable&application_name=direct"
	)
	for _, tc := range []struct {
		name, sessionURL string
		sessionPort      uint16
		pooled           bool
	}{
		{"direct", "", 6432, false},
		{"pooled", direct, 5432, true},
	} {
		cfg := &config.Config{DatabaseURL: pooler, DatabaseSessionURL: tc.sessionURL}
		pool, err := OpenPool(cfg)
		if err != nil {
			t.Fatal(err)
		}
		cc := pool.Config().ConnConfig
		pool.Close()
		wantMode := pgx.QueryExecModeCacheStatement
		if tc.pooled {
			wantMode = pgx.QueryExecModeExec
		}
		if cc.DefaultQueryExecMode != wantMode || tc.pooled && (cc.StatementCacheCapacity != 0 || cc.DescriptionCacheCapacity != 0) {
			t.Errorf("%s: loops' pool in mode %v with caches %d/%d, want mode %v (and no cache when pooled)",
				tc.name, cc.DefaultQueryExecMode, cc.StatementCacheCapacity, cc.DescriptionCacheCapacity, wantMode)
		}
		if cc.Port != 6432 || cc.RuntimeParams["application_name"] != "monitor" {
			t.Errorf("%s: loops' pool on port %d as %q, want databaseURL as monitor", tc.name, cc.Port, cc.RuntimeParams["application_name"])
		}

		session, err := SessionConfig(cfg)
		if err != nil {
			t.Fatal(err)
		}
		migrations, err := OpenSessionPool(cfg)
		if err != nil {
			t.Fatal(err)
		}
		mc := migrations.Config().ConnConfig
		migrations.Close()
		for what, c := range map[string]*pgx.ConnConfig{"listener": session, "migrations": mc} {
			if c.Port != tc.sessionPort {
				t.Errorf("%s: %s on port %d, want %d", tc.name, what, c.Port, tc.sessionPort)
			}
			if c.DefaultQueryExecMode != pgx.QueryExecModeCacheStatement || c.ConnectTimeout != connectTimeout {
				t.Errorf("%s: %s in mode %v, timeout %v", tc.name, what, c.DefaultQueryExecMode, c.ConnectTimeout)
			}
		}
	}
}
