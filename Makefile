# nfpass — build, test, lint, bench. `make test` needs root: the kernel
# tests create their own network namespaces and tear them down.
GO       ?= go
BIN      ?= bin/nfpass
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS  := -s -w -X main.version=$(VERSION)
PKGS     := ./...

.PHONY: all deps build test unit lint fmt vet staticcheck bench clean lab

all: build

# System tools the kernel tests and the lab use as oracles (Debian/Ubuntu).
deps:
	@missing=""; \
	command -v nft >/dev/null 2>&1 || missing="$$missing nftables"; \
	command -v conntrack >/dev/null 2>&1 || missing="$$missing conntrack"; \
	command -v ip >/dev/null 2>&1 || missing="$$missing iproute2"; \
	command -v unshare >/dev/null 2>&1 || missing="$$missing util-linux"; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/nfpass

# Unit and kernel tests (root). -p 2: kernel tests use namespaces, each its own.
test: deps build
	$(GO) test -count=1 -timeout 30m -p 2 $(PKGS)

# Pure tests only (no root needed).
unit:
	$(GO) test -count=1 -short ./pkg/catalog/ ./pkg/policy/ ./pkg/ruleset/ ./pkg/compile/ ./pkg/config/

lint: fmt vet staticcheck

fmt:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet $(PKGS)

staticcheck:
	$(GO) run honnef.co/go/tools/cmd/staticcheck@2025.1.1 $(PKGS)

# Benchmarks beside the peer tools (nft, conntrack); prints figures and ratios.
bench: deps build
	NFPASS_BENCH=1 $(GO) test -count=1 -v -timeout 90m -run '^TestBench$$' ./integration/bench/
	$(GO) test -run '^$$' -bench . -benchtime 1x -timeout 60m ./pkg/... ./integration/...

lab: deps build
	$(BIN) lab run

clean:
	rm -rf bin dist
