#!/usr/bin/env bash
# Removes what `cmake --install BUILD_DIR` installs, under $DESTDIR: the list
# comes from installing into a scratch directory, so it is always the
# current tree's own (no stale install_manifest.txt). Directories are removed
# only when they are grooved's own (share/grooved/...) and left empty.
#   DESTDIR=... scripts/uninstall.sh BUILD_DIR
set -euo pipefail

build=${1:?usage: uninstall.sh BUILD_DIR}
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
DESTDIR="$stage" cmake --install "$build" >/dev/null

cd "$stage"
find . ! -type d | sed 's|^\.||' | sort | while IFS= read -r f; do
  target="${DESTDIR:-}$f"
  if [ -e "$target" ] || [ -L "$target" ]; then
    rm -f -- "$target"
    echo "-- Removed: $target"
  fi
done
find . -depth -type d -path '*/grooved*' | sed 's|^\.||' | while IFS= read -r d; do
  rmdir -- "${DESTDIR:-}$d" 2>/dev/null || true
done
