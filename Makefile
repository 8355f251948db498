# fleetsim — `make help` lists the targets. `make test` is what CI runs.
GO       ?= go
PKGS     ?= ./...
BENCHTIME ?= 1x
SCENARIO ?= quickstart

.PHONY: help build run test check lint vet staticcheck fmt tidy unit sdk-deps sdktest bench bench-200k bench-shards fuzz clean image-root image

help: ## list the targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

build: ## build bin/fleetsim
	$(GO) build -o bin/fleetsim ./cmd/fleetsim

IMAGE    ?= fleetsim:dev
BUILDAH  ?= buildah --storage-driver vfs

image-root: ## what the container image holds, in bin/image/: the static binary, /tmp, /data
	rm -rf bin/image && mkdir -p bin/image/data bin/image/root && mkdir -m 1777 bin/image/root/tmp
	CGO_ENABLED=0 $(GO) build -trimpath -o bin/image/root/fleetsim ./cmd/fleetsim

image: image-root ## build the container image IMAGE (fleetsim:dev) from scratch with buildah, no daemon, no registry
	$(BUILDAH) bud --isolation chroot -t $(IMAGE) .

run: ## run a scenario on the embedded hub (SCENARIO=quickstart)
	$(GO) run ./cmd/fleetsim run $(SCENARIO)

test: check ## everything CI checks: lint, unit and integration tests with -race, SDK compatibility suite

check: lint sdk-deps unit ## lint + all Go tests with -race (the SDK suite runs inside them)

lint: fmt vet staticcheck tidy ## gofmt, go vet, staticcheck, go mod tidy -diff

fmt: ## fail when gofmt would change a file
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

vet: ## go vet
	$(GO) vet $(PKGS)

staticcheck: ## staticcheck, pinned as a tool in go.mod
	$(GO) tool staticcheck $(PKGS)

tidy: ## fail when go.mod/go.sum are not tidy
	$(GO) mod tidy -diff

unit: ## go test -race over every package (includes the SDK suite in ./sdktest)
	$(GO) test -race -count=1 -timeout 20m $(PKGS)

sdk-deps: ## install the pinned Node SDKs for the compatibility suite
	cd sdktest && npm ci --no-audit --no-fund --loglevel=error

sdktest: sdk-deps ## only the SDK compatibility suite
	$(GO) test -race -count=1 -v -run 'TestSDK' ./sdktest/

bench: ## fleet-scale benchmarks at 1k, 10k, 100k devices, each figure with its paho+mochi ceiling (ceiling-ratio), then the hub's component benchmarks
	GODEBUG=$${GODEBUG:-gcshrinkstackoff=1} $(GO) test -run '^$$' -bench . -benchtime $(BENCHTIME) -benchmem -timeout 90m ./internal/ceiling/ ./broker/ ./devicesim/ ./scenarios/...
	$(GO) test -run '^$$' -bench . -benchmem -timeout 30m ./hubjobs/...

bench-200k: ## the fleet benchmark at 200k devices (long), with the stack shrinking fleetsim's memory plan picks for it
	GODEBUG=$${GODEBUG:-gcshrinkstackoff=0} $(GO) test -run '^$$' -bench 'FleetJobs' -benchtime 1x -timeout 90m ./scenarios/runner/ -args -devices 200000

SHARDS ?= 4
PER    ?= 25000
bench-shards: build ## SHARDS (4) shard processes of PER (25000) devices against one fleetsim serve, then the same fleet in one process: connect time, job ops/s, peak RSS per process
	SHARDS=$(SHARDS) PER=$(PER) FLEETSIM=bin/fleetsim ./scripts/bench-shards

fuzz: ## run every fuzz target for FUZZTIME (default 30s)
	./.ci/fuzz $${FUZZTIME:-30s}

clean: ## remove build output
	rm -rf bin out fleetsim-data
