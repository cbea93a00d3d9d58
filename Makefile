# vidm-sync-worker — see README.md.
GO        ?= go
PKGS      ?= ./...
FUZZTIME  ?= 30s
BIN       ?= bin
IMAGE     ?= vidm-sync-worker:dev
GOLANGCI  ?= github.com/golangci/golangci-lint/v2/cmd/golangci-lint@v2.6.2
GOVULN    ?= golang.org/x/vuln/cmd/govulncheck@v1.1.4

.PHONY: all build test vet fuzz fuzz-short bench lint vuln sim demo demo-tenants chaos run docker clean

all: build test

build:
	$(GO) build -trimpath -o $(BIN)/ ./cmd/...

## test: vet, every test with the race detector (seed corpora included), then a few seconds of
## fuzzing per target (what CI runs).
## The chaos runs start worker processes and NATS clusters; they run after the other packages, not
## beside them, so that neither starves the other of the two CPUs.
test: vet
	$(GO) test -race -count=1 -timeout 8m $$($(GO) list $(PKGS) | grep -v /internal/tools/chaos)
	$(GO) test -race -count=1 -timeout 8m ./internal/tools/chaos/
	$(MAKE) --no-print-directory fuzz FUZZTIME=3s

vet:
	@unformatted=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$unformatted" ]; then echo "gofmt needed:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet $(PKGS)

## fuzz: run every fuzz target for FUZZTIME each (seeds in testdata/fuzz run in `make test` too).
fuzz:
	@set -e; for pkg in $$(grep -l '^func Fuzz' $$(find . -name '*_test.go' -not -path './.git/*') | xargs -n1 dirname | sort -u); do \
	  for f in $$(grep -h -o '^func Fuzz[A-Za-z0-9_]*' $$pkg/*_test.go | sed 's/^func //'); do \
	    echo "== $$pkg $$f"; $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg; \
	  done; \
	done

## bench: the worker beside raw JetStream and the per-pipeline script (cmd/dirsync-bench); writes
## BENCHMARKS.md and bench.json. BENCH_FLAGS: e.g. -short, -scenarios ingest,burst, -cpuprofile cpu.out.
BENCH_FLAGS ?=
bench:
	$(GO) run ./cmd/dirsync-bench $(BENCH_FLAGS)

## lint: golangci-lint (staticcheck, gosec, errcheck, errorlint, …; see .golangci.yml). CI runs it.
lint:
	$(GO) run $(GOLANGCI) run ./...

## vuln: govulncheck; needs vuln.go.dev, which the CI network does not reach, so it is not in CI.
vuln:
	$(GO) run $(GOVULN) ./...

## demo: the whole job on embedded NATS + simulator; exits non-zero unless every trigger is reported.
demo:
	$(GO) run ./cmd/vidm-sync-demo

## demo-tenants: one worker serving four identity systems at once (vidm, vra-cloud, vra7, vcf simulators over TLS)
## from a generated tenants file: a failover, VCF's DELEGATED results and a token warning; exits non-zero unless all are shown.
demo-tenants:
	$(GO) run ./cmd/vidm-sync-demo -tenants

## chaos: worker replicas as processes under faults (kills, broker restarts, vIDM pauses); exits non-zero if a guarantee breaks.
## CHAOS_FLAGS: e.g. -seed 3 -triggers 2000 -duration 60s, or -short (see -help).
CHAOS_FLAGS ?=
chaos:
	$(GO) run ./cmd/vidm-sync-chaos $(CHAOS_FLAGS)

## run: the worker in dev mode: embedded JetStream on nats://127.0.0.1:4222 and the simulator.
run:
	$(GO) run ./cmd/vidm-sync-dev

## sim: the vIDM simulator on https://127.0.0.1:8443 with the example configuration.
sim:
	$(GO) run ./cmd/vidm-sim -ca-out $(BIN)/vidm-sim-ca.pem

docker:
	docker build -t $(IMAGE) .

clean:
	rm -rf $(BIN)
