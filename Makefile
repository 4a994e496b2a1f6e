# The monitor's build, test and demo entry points. `make test` is what CI runs.
SHELL := /bin/bash
GO ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)

.PHONY: all build test vet unit demo bench bench-smoke

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

## bench: the benchmark harness (bin/monitorbench): prints the table of figures and targets, writes bench-results.json
## (BENCHFLAGS adds flags, e.g. BENCHFLAGS=-large)
bench: build
	scripts/with-postgres.sh bin/monitorbench $(BENCHFLAGS)

## bench-smoke: the harness with small sizes, in well under a minute; missed targets do not fail it, errors do
bench-smoke: build
	scripts/with-postgres.sh bin/monitorbench -smoke -json bench-results-smoke.json

vet:
	$(GO) vet ./...

unit:
	$(GO) test -race -count=1 -timeout 8m ./...
