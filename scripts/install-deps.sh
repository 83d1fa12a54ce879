#!/usr/bin/env bash
# Installs the Debian 12 packages grooved needs to build, run and test.
# Idempotent: installs only what is missing. Uses sudo when not root.
# Extra package names given as arguments are installed too (make fuzz).
set -euo pipefail

packages=(
  build-essential cmake pkg-config
  libwebsockets-dev libjansson-dev libsqlite3-dev libcmocka-dev
  python3 python3-websockets sqlite3 strace curl
  "$@"
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
echo "install-deps: installing ${missing[*]}"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
