#!/usr/bin/env bash
# mirror-hash.sh [COMMIT]: the source tarball the OpenWrt SDK packs for the
# feed package (rules/packaging/openwrt/Makefile, PKG_SOURCE_PROTO:=git) at
# COMMIT (default: the Makefile's PKG_SOURCE_VERSION), made from this git
# repository the way the SDK makes it from the upstream clone, and its
# sha256: the PKG_MIRROR_HASH to pin. Prints Makefile lines to paste:
#
#   # nfpass-2026.11.29~6229b3af.tar.zst (zstd 1.5.7, GNU tar 1.34)
#   PKG_SOURCE_DATE:=2026-11-29
#   PKG_SOURCE_VERSION:=6229b3afbe82ff2c889b4acfe0ba933a4e352f98
#   PKG_MIRROR_HASH:=<sha256 of that file>
#
# The recipe is OpenWrt's include/download.mk (main and 25.12; 24.10's has
# the same steps, but its host zstd is 1.5.6):
#   PKG_VERSION := $(subst -,.,$(PKG_SOURCE_DATE))~$(call version_abbrev,...)
#                  (the first 8 hex digits), PKG_SOURCE_SUBDIR :=
#                  $(PKG_NAME)-$(PKG_VERSION), PKG_SOURCE := $(SUBDIR).tar.zst
#   DownloadMethod/rawgit: git clone URL SUBDIR; git checkout VERSION;
#     TAR_TIMESTAMP=`git log -1 --format=@%ct` (committer time);
#     git config core.abbrev 8; git archive --format=tar HEAD (applies
#     .gitattributes export-ignore/export-subst); tar -r .git .gitmodules
#     into it; rm -rf SUBDIR; mkdir SUBDIR; tar -C SUBDIR -xf it;
#     git submodule update --init --recursive; rm -rf .git .gitmodules
#   dl_tar_pack: tar --numeric-owner --owner=0 --group=0 --mode=a-s
#     --sort=name --mtime=$TAR_TIMESTAMP -c SUBDIR | zstd -T0 --ultra -20 -c
# under the SDK's `umask 022` (include/toplevel.mk) as a user that is not
# root (extraction applies the umask: git archive's 0664/0775 become
# 0644/0755), with the SDK's own host tools (staging_dir/host/bin: GNU tar
# 1.35, zstd 1.5.7 since February 2025). zstd's output changes between its
# versions, so this refuses a zstd other than SDK_ZSTD_VERSION; ZSTD= names
# the binary, by default the one sdk-zstd.sh finds (`make deps` provides it).
# Measured on this repository: 1.5.4 packs another file; -T1, -T2 and -T8
# the same one (--single-thread another); zstd reading the tar from a file
# instead of a pipe another (it then knows the size); GNU tar 1.34 and 1.35
# the same one.
#
# Environment: ZSTD (default: `sdk-zstd.sh --find`), TAR (default: tar, GNU),
# SDK_ZSTD_VERSION (default 1.5.7), KEEP=DIR keeps the tarball in DIR.
set -euo pipefail
umask 022
export LC_ALL=C TZ=UTC

here=$(cd "$(dirname "$0")" && pwd)
makefile=$here/Makefile
repo=$(git -C "$here" rev-parse --show-toplevel)
TAR=${TAR:-tar}
SDK_ZSTD_VERSION=${SDK_ZSTD_VERSION:-1.5.7}
export SDK_ZSTD_VERSION

die() { echo "mirror-hash.sh: $*" >&2; exit 2; }

mkvar() { sed -n "s/^$1[[:space:]]*:=[[:space:]]*//p" "$makefile" | tail -n 1; }

name=$(mkvar PKG_NAME)
[ -n "$name" ] || die "$makefile: no PKG_NAME"
want=${1:-$(mkvar PKG_SOURCE_VERSION)}
[ -n "$want" ] || die "usage: mirror-hash.sh [COMMIT] (the Makefile has no PKG_SOURCE_VERSION)"

if [ -z "${ZSTD:-}" ]; then
	ZSTD=$("$here/sdk-zstd.sh" --find) || exit 2
fi
command -v "$ZSTD" >/dev/null 2>&1 || die "zstd not found (ZSTD=$ZSTD): install the zstd package, version $SDK_ZSTD_VERSION (\`make deps\` provides one)"
zver=$("$ZSTD" --version | sed -n 's/.* v\([0-9][0-9.]*\),.*/\1/p')
[ "$zver" = "$SDK_ZSTD_VERSION" ] || die "$ZSTD is zstd $zver, the OpenWrt SDK packs with zstd $SDK_ZSTD_VERSION and another version compresses differently (another hash): set ZSTD= to a zstd $SDK_ZSTD_VERSION (\`make deps\` provides one), or SDK_ZSTD_VERSION= for another SDK"
"$TAR" --version 2>/dev/null | grep -q 'GNU tar' || die "$TAR is not GNU tar (needs --sort=name): install the tar package"

commit=$(git -C "$repo" rev-parse --verify --quiet "$want^{commit}") ||
	die "commit $want is not in $repo (a shallow clone? \`git fetch --unshallow\`)"
# PKG_SOURCE_DATE: the commit's (committer) date, in UTC like TAR_TIMESTAMP.
date=$(git -C "$repo" log -1 --no-show-signature --date=short-local --format=%cd "$commit")
subdir=$name-${date//-/.}~${commit:0:8}
file=$subdir.tar.zst

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cd "$tmp"
# Nothing of this machine's git configuration (autocrlf, tar.umask, ...)
# shapes the archive: the SDK's clone is a plain one.
export GIT_CONFIG_GLOBAL=/dev/null GIT_CONFIG_NOSYSTEM=1
# --shared: the commit need not be on a branch of $repo.
git clone --quiet --shared --no-checkout "$repo" "$subdir"
(cd "$subdir" && git checkout --quiet "$commit")
ts=$(cd "$subdir" && git log -1 --no-show-signature --format=@%ct)
(cd "$subdir" && git config core.abbrev 8 && git archive --format=tar HEAD --output="../$subdir.tar.git")
"$TAR" --numeric-owner --owner=0 --group=0 --ignore-failed-read -C "$subdir" -f "$subdir.tar.git" -r .git .gitmodules 2>/dev/null
rm -rf "$subdir" && mkdir "$subdir"
# --no-same-permissions/--no-same-owner: extract as the SDK's non-root user
# does, even when this runs as root.
"$TAR" --no-same-permissions --no-same-owner -C "$subdir" -xf "$subdir.tar.git"
(cd "$subdir" && git submodule --quiet update --init --recursive -- && rm -rf .git .gitmodules)
"$TAR" --numeric-owner --owner=0 --group=0 --mode=a-s --sort=name --mtime="$ts" -c "$subdir" |
	"$ZSTD" -q -T0 --ultra -20 -c >"$file"
sum=$(sha256sum "$file")
sum=${sum%% *}
if [ -n "${KEEP:-}" ]; then
	mkdir -p "$KEEP" && cp "$file" "$KEEP/"
fi

echo "# $file (zstd $zver, $("$TAR" --version | head -n 1))"
echo "PKG_SOURCE_DATE:=$date"
echo "PKG_SOURCE_VERSION:=$commit"
echo "PKG_MIRROR_HASH:=$sum"
