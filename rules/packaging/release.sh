#!/bin/sh
# Static cross builds for router targets: `make release` runs this from the
# repository root. Arguments: GOOS/GOARCH[/variant] (variant: GOMIPS for
# mips/mipsle, GOARM for arm). Binaries go to dist/, with their sizes.
#
# 32-bit workaround: google/nftables at the pinned pseudo-version passes
# math.MaxUint32 as an int to fmt.Sprintf (conn.go, allocateTransactionID),
# which does not compile where int is 32 bits. For those targets only, the
# build uses a copy of the module with that one argument typed uint32,
# through an alternate go.mod in dist/ (-modfile): the repository's go.mod
# and the module cache are untouched. Once the pinned version compiles on
# 32 bits the pattern is gone and the workaround switches itself off.
set -eu
GO=${GO:-go}
LDFLAGS=${LDFLAGS:--s -w}
mkdir -p dist

modfile32=""
nft_dir=$($GO list -m -f '{{.Dir}}' github.com/google/nftables)
nft_ver=$($GO list -m -f '{{.Version}}' github.com/google/nftables)
pattern='single nftables transaction", math.MaxUint32))'
if grep -qF "$pattern" "$nft_dir/conn.go"; then
	patched=$PWD/dist/nftables-32bit
	rm -rf "$patched" && cp -r "$nft_dir" "$patched" && chmod -R u+w "$patched"
	sed -i 's/single nftables transaction", math.MaxUint32))/single nftables transaction", uint32(math.MaxUint32)))/' "$patched/conn.go"
	cp go.mod dist/release32.mod
	cp go.sum dist/release32.sum
	printf '\nreplace github.com/google/nftables %s => %s\n' "$nft_ver" "$patched" >> dist/release32.mod
	modfile32=$PWD/dist/release32.mod
fi

for t in "$@"; do
	os=${t%%/*}
	rest=${t#*/}
	arch=${rest%%/*}
	variant=""
	[ "$rest" = "$arch" ] || variant=${rest#*/}
	out=dist/nfpass-$os-$arch${variant:+-$variant}
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
(cd dist && sha256sum nfpass-*-* > SHA256SUMS)
echo "dist/SHA256SUMS written"
