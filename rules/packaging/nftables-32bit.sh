#!/bin/sh
# Usage: nftables-32bit.sh MODFILE WORKDIR   (run from the module root)
#
# google/nftables at the pinned pseudo-version passes math.MaxUint32 as an
# int to fmt.Sprintf (conn.go, allocateTransactionID), which does not compile
# where int is 32 bits (mips, mipsle, arm, 386). When the pinned version has
# that line, this copies the module to WORKDIR/nftables with that one
# argument typed uint32 and adds a replace directive for it to MODFILE (a
# copy of go.mod used with -modfile, or the go.mod of an OpenWrt build dir;
# never the repository's own). Prints MODFILE when it patched, nothing when
# the pinned version needs no fix (then the workaround switches itself off).
set -eu
modfile=$1
work=$2
GO=${GO:-go}
$GO mod download github.com/google/nftables
dir=$($GO list -m -f '{{.Dir}}' github.com/google/nftables)
ver=$($GO list -m -f '{{.Version}}' github.com/google/nftables)
bad='single nftables transaction", math.MaxUint32))'
grep -qF "$bad" "$dir/conn.go" || exit 0
mkdir -p "$work"
work=$(cd "$work" && pwd)
rm -rf "$work/nftables"
cp -r "$dir" "$work/nftables"
chmod -R u+w "$work/nftables"
sed -i 's/single nftables transaction", math.MaxUint32))/single nftables transaction", uint32(math.MaxUint32)))/' "$work/nftables/conn.go"
printf '\nreplace github.com/google/nftables %s => %s\n' "$ver" "$work/nftables" >> "$modfile"
echo "$modfile"
