#!/bin/sh
# Static cross builds for router targets: `make release` runs this from the
# repository root. Arguments: GOOS/GOARCH[/variant] (variant: GOMIPS for
# mips/mipsle, GOARM for arm). Binaries go to dist/, with their sizes; with
# OUT set (one target), to that path instead, without SHA256SUMS.
#
# 32-bit targets (mips, mipsle, arm) build with the workaround of
# nftables-32bit.sh: an alternate go.mod in dist/ (-modfile); the repository's
# go.mod and the module cache are untouched.
set -eu
GO=${GO:-go}
LDFLAGS=${LDFLAGS:--s -w}
mkdir -p dist

modfile32=""
cp go.mod dist/release32.mod
cp go.sum dist/release32.sum
modfile32=$(sh rules/packaging/nftables-32bit.sh dist/release32.mod dist/release32)
[ -z "$modfile32" ] || modfile32=$PWD/$modfile32

for t in "$@"; do
	os=${t%%/*}
	rest=${t#*/}
	arch=${rest%%/*}
	variant=""
	[ "$rest" = "$arch" ] || variant=${rest#*/}
	out=${OUT:-dist/nfpass-$os-$arch${variant:+-$variant}}
	modflag=""
	case $arch in
	mips | mipsle | arm | 386)
		[ -z "$modfile32" ] || modflag="-modfile=$modfile32"
		;;
	esac
	case $arch in
	mips | mipsle) export GOMIPS="$variant" ;;
	arm) export GOARM="$variant" ;;
	esac
	CGO_ENABLED=0 GOOS=$os GOARCH=$arch $GO build $modflag -trimpath -ldflags "$LDFLAGS" -o "$out" ./cmd/nfpass
	unset GOMIPS GOARM
	size=$(stat -c %s "$out")
	awk -v f="$out" -v s="$size" 'BEGIN { printf "%-36s %9d bytes  %5.1f MiB\n", f, s, s / 1048576 }'
done
[ -n "${OUT:-}" ] && exit 0
(cd dist && sha256sum nfpass-*-* > SHA256SUMS)
echo "dist/SHA256SUMS written"
