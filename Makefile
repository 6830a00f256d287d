# imagebot's build. `make demo` and `make test` work on a fresh machine: hack/tools.sh installs
# the Debian packages and builds the Kubernetes binaries the test world needs (once per machine,
# into ~/.cache/imagebot/bin/<versions>).
SHELL := bash
GO ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
LDFLAGS := -X imagebot.dev/imagebot/internal/version.Version=$(VERSION) \
           -X imagebot.dev/imagebot/internal/version.Commit=$(COMMIT)
# -race on everything: the integration tests run real servers and the race detector is cheap
# next to them.
TEST_FLAGS ?= -race -count=1 -timeout 25m
BENCH ?= .
BENCH_FLAGS ?= -run '^$$' -bench '$(BENCH)' -benchmem -count 5

.PHONY: all build test bench lint demo testenv tools clean

all: build

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/imagebot ./cmd/imagebot

tools:
	@bash hack/tools.sh >/dev/null

# go test runs vet's high-confidence checks itself; the full go vet (a second, non-race build
# of everything: about 2 minutes cold on 2 cores) is in lint.
test:
	IMAGEBOT_BIN_DIR="$$(bash hack/tools.sh)" $(GO) test $(TEST_FLAGS) ./...

bench:
	IMAGEBOT_BIN_DIR="$$(bash hack/tools.sh)" $(GO) test $(BENCH_FLAGS) ./...

lint:
	$(GO) vet ./...
	"$$(bash hack/tools.sh lint)/staticcheck-$$(sed -n 's/^STATICCHECK_VERSION=//p' hack/tools.sh)" ./...

demo: tools
	$(GO) run ./hack/demo

# The bare test world (cluster, registry, git server) without imagebot.
testenv: tools
	$(GO) run ./hack/testenv up

clean:
	rm -rf bin
