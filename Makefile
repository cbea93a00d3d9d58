# vidm-sync-worker — see README.md.
GO        ?= go
PKGS      ?= ./...
FUZZTIME  ?= 30s
BIN       ?= bin
IMAGE     ?= vidm-sync-worker:dev
GOLANGCI  ?= github.com/golangci/golangci-lint/v2/cmd/golangci-lint@v2.6.2
GOVULN    ?= golang.org/x/vuln/cmd/govulncheck@v1.1.4
## MODULES: the nested modules (deploy, internal/ops/admin/browsertest; see the README's Layout), whose
## tests' heavy dependencies stay out of the root go.mod. test, vet, lint, fuzz, download and tidy run
## in each from its own directory after the root module; MODULES= leaves them out.
MODULES   ?= $(patsubst ./%/go.mod,%,$(shell find . -mindepth 2 -name go.mod -not -path '*/.*' -not -path '*/_*' -not -path '*/testdata/*' | sort))

.PHONY: all build test vet fuzz fuzz-short bench lint vuln sim demo demo-tenants chaos run docker clean download tidy

all: build test

build:
	$(GO) build -trimpath -o $(BIN)/ ./cmd/...

## test: vet, every test with the race detector (seed corpora included), the nested modules' tests,
## then a few seconds of fuzzing per target (what CI runs).
## The chaos runs start worker processes and NATS clusters; they run after the other packages, not
## beside them, so that neither starves the other of the two CPUs.
test: vet
	$(GO) test -race -count=1 -timeout 8m $$($(GO) list $(PKGS) | grep -v /internal/tools/chaos)
	$(GO) test -race -count=1 -timeout 8m ./internal/tools/chaos/
	@set -e; for m in $(MODULES); do \
	  echo "== module $$m"; (cd $$m && $(GO) test -race -count=1 -timeout 8m ./...); \
	done
	$(MAKE) --no-print-directory fuzz FUZZTIME=3s

vet:
	@unformatted=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$unformatted" ]; then echo "gofmt needed:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet $(PKGS)
	@set -e; for m in $(MODULES); do echo "== module $$m"; (cd $$m && $(GO) vet ./...); done

## fuzz: run every fuzz target for FUZZTIME each (seeds in testdata/fuzz run in `make test` too).
## Each runs from its package's directory, so a target in a nested module runs in that module.
## A target that fails only with Go 1.26's -fuzztime deadline race (no failing input written) is
## run once more; any failing input, panic or other failure fails at once.
fuzz:
	@set -e; for pkg in $$(grep -l '^func Fuzz' $$(find . -name '*_test.go' -not -path './.git/*') | xargs -n1 dirname | sort -u); do \
	  for f in $$(grep -h -o '^func Fuzz[A-Za-z0-9_]*' $$pkg/*_test.go | sed 's/^func //'); do \
	    echo "== $$pkg $$f"; \
	    if out=$$(cd $$pkg && $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) . 2>&1); then echo "$$out"; continue; fi; \
	    echo "$$out"; \
	    case "$$out" in \
	      *"Failing input written"*|*"panic:"*) exit 1;; \
	      *"context deadline exceeded"*) echo "== $$f: Go's fuzz coordinator raced its own -fuzztime deadline (go.dev/issue/75804, fixed in Go 1.27) and wrote no failing input; once more"; \
	        (cd $$pkg && $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) .);; \
	      *) exit 1;; \
	    esac; \
	  done; \
	done

## bench: the worker beside raw JetStream and the per-pipeline script (cmd/dirsync-bench); writes
## BENCHMARKS.md and bench.json. BENCH_FLAGS: e.g. -short, -scenarios ingest,burst, -cpuprofile cpu.out.
BENCH_FLAGS ?=
bench:
	$(GO) run ./cmd/dirsync-bench $(BENCH_FLAGS)

## lint: golangci-lint (staticcheck, gosec, errcheck, errorlint, …; see .golangci.yml) in every
## module (a nested one finds the root's .golangci.yml). CI runs it.
lint:
	$(GO) run $(GOLANGCI) run ./...
	@set -e; for m in $(MODULES); do echo "== module $$m"; (cd $$m && $(GO) run $(GOLANGCI) run ./...); done

## download: go mod download in every module (CI runs it first).
download:
	$(GO) mod download
	@set -e; for m in $(MODULES); do (cd $$m && $(GO) mod download); done

## tidy: go mod tidy in every module; the root first, since the nested modules require it (a
## dependency changed in the root's go.mod must reach theirs, or their tests stop at "updates to
## go.mod needed").
tidy:
	$(GO) mod tidy
	@set -e; for m in $(MODULES); do (cd $$m && $(GO) mod tidy); done

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
