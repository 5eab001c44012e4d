#!/usr/bin/env bash
# sdk-zstd.sh [--find]: prints the path of a zstd of the version the OpenWrt
# SDK packs git sources with (SDK_ZSTD_VERSION, 1.5.7: its host zstd since
# February 2025, 25.12 and main). mirror-hash.sh needs exactly that version:
# zstd's output at -20 changes between versions (1.5.4, Debian 12's, gives
# another PKG_MIRROR_HASH).
#
# The zstd on PATH is used when it is that version (Debian 13's zstd
# package). Otherwise, without --find, it fetches Debian's zstd package of
# that version (from SDK_ZSTD_SUITE, trixie) with apt-get from the Debian
# archive this machine's apt already uses, into a private apt state in a
# temporary directory, and unpacks it (dpkg -x) into SDK_ZSTD_DIR; nothing
# of the system's packages or apt sources changes. Its zstd runs on Debian
# 12 (libc6 >= 2.34, liblzma, liblz4, zlib). `make deps` runs this as root.
# With --find it never fetches and fails (exit 1) when there is none.
set -euo pipefail
export LC_ALL=C

V=${SDK_ZSTD_VERSION:-1.5.7}
SUITE=${SDK_ZSTD_SUITE:-trixie}
DEST=${SDK_ZSTD_DIR:-/usr/local/lib/nfpass/zstd-$V}

version() { "$1" --version 2>/dev/null | sed -n 's/.* v\([0-9][0-9.]*\),.*/\1/p'; }

find_zstd() {
	local z
	for z in "$(command -v zstd || true)" "$DEST/usr/bin/zstd"; do
		if [ -n "$z" ] && [ -x "$z" ] && [ "$(version "$z")" = "$V" ]; then
			echo "$z"
			return 0
		fi
	done
	return 1
}

find_zstd && exit 0
if [ "${1:-}" = --find ]; then
	echo "sdk-zstd.sh: no zstd $V (the OpenWrt SDK's) on PATH or in $DEST: run \`make deps\` (it puts Debian's zstd package $V, from $SUITE, in $DEST) or, on Debian 13, apt-get install zstd" >&2
	exit 1
fi

for c in apt-get dpkg; do
	command -v $c >/dev/null 2>&1 || { echo "sdk-zstd.sh: $c not found: fetch zstd $V yourself and set ZSTD=" >&2; exit 1; }
done
keyring=/usr/share/keyrings/debian-archive-keyring.gpg
uri=$(apt-get indextargets --format '$(REPO_URI) $(RELEASE)' 'Identifier: Packages' |
	awk '$1 ~ /\/debian\/$/ && $2 !~ /-/ { print $1; exit }')
if [ -z "$uri" ] || [ ! -r "$keyring" ]; then
	echo "sdk-zstd.sh: no Debian archive in apt's sources (or no $keyring): install zstd $V yourself and set ZSTD=" >&2
	exit 1
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/lists/partial" "$tmp/archives/partial"
echo "deb [signed-by=$keyring] $uri $SUITE main" >"$tmp/sources.list"
opts=(-o Dir::Etc::SourceList="$tmp/sources.list" -o Dir::Etc::SourceParts=/nonexistent
	-o Dir::State::Lists="$tmp/lists" -o Dir::State::status=/dev/null
	-o Dir::Cache::Archives="$tmp/archives" -o Dir::Cache::pkgcache= -o Dir::Cache::srcpkgcache=
	-o APT::Sandbox::User=root)
echo "sdk-zstd.sh: fetching Debian's zstd package from $SUITE into $DEST" >&2
apt-get -qq "${opts[@]}" update
(cd "$tmp" && apt-get -qq "${opts[@]}" download zstd)
deb=$(ls "$tmp"/zstd_*.deb)
case $deb in
*/zstd_"$V"[+-]*) ;;
*) echo "sdk-zstd.sh: $SUITE has $(basename "$deb"), not zstd $V: set SDK_ZSTD_SUITE" >&2; exit 1 ;;
esac
rm -rf "$DEST.new" && mkdir -p "$DEST.new"
dpkg -x "$deb" "$DEST.new"
[ "$(version "$DEST.new/usr/bin/zstd")" = "$V" ] || { echo "sdk-zstd.sh: $deb does not run here" >&2; exit 1; }
rm -rf "$DEST" && mv "$DEST.new" "$DEST"
echo "$DEST/usr/bin/zstd"
