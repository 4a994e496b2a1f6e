# The monitor's build, test and demo entry points. `make test` is what CI runs.
SHELL := /bin/bash
GO ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)

.PHONY: all build test vet unit faults-short test-faults soak demo bench bench-smoke

all: build

## build: bin/monitor and the tools (bin/crashsim: crash generator, simulated processors; bin/monitorbench: benchmarks)
build:
	$(GO) build -ldflags '$(LDFLAGS)' -o bin/monitor ./cmd/monitor
	$(GO) build -o bin/crashsim ./cmd/crashsim
	$(GO) build -o bin/monitorbench ./cmd/monitorbench

## demo: throwaway database, generated crashes, simulated processors and the monitor, then a summary
demo: build
	scripts/demo.sh

## test: provision a throwaway PostgreSQL (unless MONITOR_TEST_DATABASE_URL is set), headless Chromium (for the
## status page's browser test) and PgBouncer (for the test through a transaction pooler), vet, run every test with
## -race, bench-smoke
test:
	scripts/ensure-chromium.sh
	scripts/ensure-pgbouncer.sh
	scripts/with-postgres.sh $(MAKE) --no-print-directory vet unit bench-smoke

## bench: the benchmark harness (bin/monitorbench) against a durable cluster of its own (fsync, synchronous_commit and
## full_page_writes on; any MONITOR_TEST_DATABASE_URL is ignored) with the trees on disk (/var/tmp): prints the table
## of figures and targets, the scaling table, writes bench-results.json and the chart BENCHCHART (docs/bench.svg)
## (BENCHFLAGS adds flags, e.g. BENCHFLAGS='-tmpfs' or BENCHFLAGS='-no-1m')
BENCHCHART ?= docs/bench.svg
bench: build
	MONITOR_PG_DURABLE=1 scripts/with-postgres.sh bin/monitorbench -svg $(BENCHCHART) $(BENCHFLAGS)

## bench-smoke: the harness with small sizes, in well under a minute, on make test's fast cluster (its header says it is
## not durable); missed targets do not fail it, errors do
bench-smoke: build
	scripts/with-postgres.sh bin/monitorbench -smoke -json bench-results-smoke.json

vet:
	$(GO) vet ./...

# Every package; the fault-injection suite's short form runs as a step of its own (faults-short), after the others
# and with -v, so that its account is shown.
unit:
	$(GO) test -race -count=1 -timeout 8m $$($(GO) list ./... | grep -v /internal/faultsuite$$)
	$(MAKE) --no-print-directory faults-short

# The fault-injection suite's settings (README, "Fault-injection suite"): SEED replays a run, MONITORS runs several
# monitors at once, ROUNDS is test-faults' number of rounds and SOAK the soak's duration.
SEED ?=
MONITORS ?= 2
ROUNDS ?= 30
SOAK ?= 5m
FAULTS_ENV = MONITOR_FAULTS_MONITORS=$(MONITORS) $(if $(SEED),MONITOR_FAULTS_SEED=$(SEED))
FAULTS_TEST = -count=1 -v -run '^TestFaults$$' ./internal/faultsuite/

## test-faults: the fault-injection suite, ROUNDS rounds (default 30) with -race; its PostgreSQL is its own
test-faults:
	scripts/with-postgres.sh env $(FAULTS_ENV) MONITOR_FAULTS_ROUNDS=$(ROUNDS) $(GO) test -race -timeout 60m $(FAULTS_TEST)

## soak: the suite for SOAK (default 5m) without -race, sampling a monitor's memory, goroutines and open files
soak:
	scripts/with-postgres.sh env $(FAULTS_ENV) MONITOR_FAULTS_SOAK=$(SOAK) $(GO) test -timeout 24h $(FAULTS_TEST)

## faults-short: the fault-injection suite's short form (8 rounds, under a minute; SEED and MONITORS apply) and the
## test of its invariant checker; part of make test (unit)
faults-short:
	env $(FAULTS_ENV) MONITOR_FAULTS_ROUNDS=8 $(GO) test -race -count=1 -timeout 5m -v ./internal/faultsuite/
