# The monitor's build, test and demo entry points. `make test` is what CI runs.
SHELL := /bin/bash
GO ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)

.PHONY: all build test vet unit demo

all: build

## build: bin/monitor and the tools (bin/crashsim: crash generator, simulated processors)
build:
	$(GO) build -ldflags '$(LDFLAGS)' -o bin/monitor ./cmd/monitor
	$(GO) build -o bin/crashsim ./cmd/crashsim

## demo: throwaway database, generated crashes, simulated processors and the monitor, then a summary
demo: build
	scripts/demo.sh

## test: provision a throwaway PostgreSQL (unless MONITOR_TEST_DATABASE_URL is set), vet, run every test with -race
test:
	scripts/with-postgres.sh $(MAKE) --no-print-directory vet unit

vet:
	$(GO) vet ./...

unit:
	$(GO) test -race -count=1 -timeout 8m ./...
