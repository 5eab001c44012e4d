# nfpass — build, test, lint, bench. `make test` needs root: the kernel
# tests create their own network namespaces and tear them down.
GO       ?= go
BIN      ?= bin/nfpass
# The lab: the same command tree built with -tags lab (it imports
# integration/, which the router binary never links).
LAB_BIN  ?= bin/nfpass-lab
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS  := -s -w -X main.version=$(VERSION)
PKGS     := ./...

.PHONY: all deps build build-lab test unit lint fmt vet staticcheck bench clean lab deb release tools ipk ipks cross openwrt-hash openwrt-pin

# Packaging. nfpm runs from the module proxy (not a go.mod dependency);
# v2.45.2 is the newest whose dependencies the proxy serves in full.
NFPM        ?= $(GO) run github.com/goreleaser/nfpm/v2/cmd/nfpm@v2.45.2
# The .deb's architecture, as a Go GOARCH (amd64, arm64, riscv64, ...).
DEB_ARCH    ?= $(shell $(GO) env GOARCH)
# Debian versions must start with a digit: tag v1.2.3 -> 1.2.3, else 0.0.0~git<sha>.
DEB_VERSION ?= $(shell v=$$(git describe --tags --exact-match 2>/dev/null); \
	if [ -n "$$v" ]; then echo "$${v\#v}"; else echo "0.0.0~git$$(git rev-parse --short HEAD 2>/dev/null || echo 0)"; fi)
DEB         ?= dist/nfpass_$(DEB_VERSION)_$(DEB_ARCH).deb
PKG_STAGE   ?= dist/pkg
# The .ipk (OpenWrt, opkg): one Go target and its OpenWrt architecture;
# `make ipks` builds one per release target (IPK_ARCHS, in the same order).
IPK_TARGET  ?= linux/amd64
IPK_ARCH    ?= x86_64
IPK_VERSION ?= $(DEB_VERSION)
IPK         ?= dist/nfpass_$(IPK_VERSION)_$(IPK_ARCH).ipk
IPK_STAGE   ?= dist/ipk-stage
IPK_ARCHS   := mipsel_24kc mips_24kc arm_cortex-a7_neon-vfpv4 aarch64_cortex-a53 x86_64
# Router targets for `make release`: GOOS/GOARCH[/variant].
RELEASE_TARGETS := linux/mipsle/softfloat linux/mips/softfloat linux/arm/7 linux/arm64 linux/amd64

all: build

# System tools the kernel tests and the lab use as oracles (Debian/Ubuntu),
# and zstd for the OpenWrt source tarball (integration/packaging).
deps:
	@missing=""; \
	command -v nft >/dev/null 2>&1 || missing="$$missing nftables"; \
	command -v conntrack >/dev/null 2>&1 || missing="$$missing conntrack"; \
	command -v ip >/dev/null 2>&1 || missing="$$missing iproute2"; \
	command -v unshare >/dev/null 2>&1 || missing="$$missing util-linux"; \
	command -v strace >/dev/null 2>&1 || missing="$$missing strace"; \
	command -v man >/dev/null 2>&1 || missing="$$missing man-db"; \
	command -v curl >/dev/null 2>&1 || missing="$$missing curl"; \
	command -v wget >/dev/null 2>&1 || missing="$$missing wget"; \
	command -v busybox >/dev/null 2>&1 || missing="$$missing busybox"; \
	command -v qemu-mipsel >/dev/null 2>&1 || missing="$$missing qemu-user"; \
	command -v zstd >/dev/null 2>&1 || missing="$$missing zstd"; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi
	@# zstd of the OpenWrt SDK's version, for `make openwrt-hash` and its
	@# test (Debian 12's zstd is older and compresses differently); without
	@# it only that test fails, saying so.
	@rules/packaging/openwrt/sdk-zstd.sh >/dev/null || echo "warning: no zstd of the OpenWrt SDK's version (see above)"

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/nfpass

build-lab:
	CGO_ENABLED=0 $(GO) build -tags lab -trimpath -ldflags '$(LDFLAGS)' -o $(LAB_BIN) ./cmd/nfpass

# Go tools run from the module proxy, built once into the build cache (nfpm
# takes about two minutes to compile cold; integration/packaging runs it).
tools:
	$(NFPM) --version >/dev/null

# Unit and kernel tests (root). -p 2: kernel tests use namespaces, each its own.
# integration/packaging builds and installs the .deb (dpkg) and purges it.
# cmd/nfpass runs once more with the lab and the generator built in.
test: deps build tools
	$(GO) test -count=1 -timeout 30m -p 2 $(PKGS)
	$(GO) test -count=1 -tags lab,gen ./cmd/nfpass/

# Pure tests only (no root needed).
unit:
	$(GO) test -count=1 -short ./pkg/catalog/ ./pkg/policy/ ./pkg/ruleset/ ./pkg/compile/ ./pkg/config/ ./integration/badconfig/ ./pkg/sdnotify/ ./pkg/statushttp/ ./pkg/textwrap/

lint: fmt vet staticcheck

fmt:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet $(PKGS)
	$(GO) vet -tags lab,gen ./cmd/nfpass/

staticcheck:
	$(GO) run honnef.co/go/tools/cmd/staticcheck@v0.8.2 $(PKGS)

# Benchmarks beside the peer tools (nft, conntrack); prints figures and ratios.
bench: deps build
	NFPASS_BENCH=1 $(GO) test -count=1 -v -timeout 90m -run '^TestBench$$' ./integration/bench/
	$(GO) test -run '^$$' -bench . -benchtime 1x -timeout 60m ./pkg/... ./integration/...

lab: deps build-lab
	$(LAB_BIN) lab run

# The Debian package: binary, systemd unit, /etc/nfpass/nfpass.yaml
# (conffile), man pages and bash/zsh/fish completions generated from the
# commands themselves (the generator is built only with -tags gen, so
# cobra/doc stays out of the binary). Output: $(DEB).
deb:
	rm -rf $(PKG_STAGE) && mkdir -p $(PKG_STAGE)
	CGO_ENABLED=0 GOOS=linux GOARCH=$(DEB_ARCH) $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(PKG_STAGE)/nfpass ./cmd/nfpass
	$(GO) run -tags gen -ldflags '$(LDFLAGS)' ./cmd/nfpass gen man $(PKG_STAGE)/man
	gzip -9n $(PKG_STAGE)/man/*.8 $(PKG_STAGE)/man/*.5
	$(GO) run -tags gen ./cmd/nfpass gen completion $(PKG_STAGE)/completions
	cp rules/service/nfpass.service $(PKG_STAGE)/nfpass.service
	@mkdir -p $(dir $(DEB))
	PKG_STAGE=$(PKG_STAGE) DEB_ARCH=$(DEB_ARCH) DEB_VERSION=$(DEB_VERSION) $(NFPM) package --config rules/packaging/nfpm.yaml --packager deb --target $(DEB)
	@ls -l $(DEB)

# OpenWrt package: /usr/sbin/nfpass, /etc/init.d/nfpass (procd) and
# /etc/config/nfpass (UCI, a conffile); Depends on the kmods the catalog
# names. The binary is built as `make release` builds it (the 32-bit
# workaround included). Output: $(IPK).
ipk:
	rm -rf $(IPK_STAGE) && mkdir -p $(IPK_STAGE) $(dir $(IPK))
	GO='$(GO)' LDFLAGS='$(LDFLAGS)' OUT=$(IPK_STAGE)/nfpass sh rules/packaging/release.sh $(IPK_TARGET)
	IPK_STAGE=$(IPK_STAGE) IPK_ARCH=$(IPK_ARCH) IPK_VERSION=$(IPK_VERSION) $(NFPM) package --config rules/packaging/nfpm-ipk.yaml --packager ipk --target $(IPK)
	@ls -l $(IPK)

ipks:
	@set -e; set -- $(IPK_ARCHS); for t in $(RELEASE_TARGETS); do \
		$(MAKE) --no-print-directory ipk IPK_TARGET=$$t IPK_ARCH=$$1 IPK=dist/nfpass_$(IPK_VERSION)_$$1.ipk; shift; \
	done

# The OpenWrt feed package's pin (rules/packaging/openwrt/Makefile): the
# PKG_SOURCE_DATE/VERSION/MIRROR_HASH lines for COMMIT (default: the pinned
# one), packed the way the OpenWrt SDK packs it; see mirror-hash.sh.
openwrt-hash:
	@rules/packaging/openwrt/mirror-hash.sh $(COMMIT)

# Pin the OpenWrt package (rules/packaging/openwrt/Makefile) to COMMIT
# (default HEAD: commit the code first, then this, then commit the
# Makefile); integration/packaging fails while the pin lags the code.
openwrt-pin:
	@out=$$(rules/packaging/openwrt/mirror-hash.sh $(or $(COMMIT),HEAD)) || exit 1; \
	for k in PKG_SOURCE_DATE PKG_SOURCE_VERSION PKG_MIRROR_HASH; do \
	  v=$$(printf '%s\n' "$$out" | sed -n "s/^$$k:=//p"); \
	  [ -n "$$v" ] || { echo "openwrt-pin: mirror-hash.sh gave no $$k"; exit 1; }; \
	  sed -i "s|^$$k:=.*|$$k:=$$v|" rules/packaging/openwrt/Makefile; \
	done; \
	grep -E '^PKG_(SOURCE_DATE|SOURCE_VERSION|MIRROR_HASH):=' rules/packaging/openwrt/Makefile

# Static (CGO_ENABLED=0) cross builds for common router targets into dist/,
# with sizes; see rules/packaging/release.sh (and its 32-bit note).
release:
	GO='$(GO)' LDFLAGS='$(LDFLAGS)' sh rules/packaging/release.sh $(RELEASE_TARGETS)

# One static cross build exactly as `make release` builds it (release.sh,
# the 32-bit workaround included): CROSS_TARGET to CROSS_OUT.
# integration/packaging (TestCross32) runs it for linux/arm/7.
CROSS_TARGET ?= linux/arm/7
CROSS_OUT    ?= dist/nfpass-cross
cross:
	@mkdir -p $(dir $(CROSS_OUT))
	GO='$(GO)' LDFLAGS='$(LDFLAGS)' OUT=$(CROSS_OUT) sh rules/packaging/release.sh $(CROSS_TARGET)

clean:
	rm -rf bin dist
