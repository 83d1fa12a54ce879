#!/usr/bin/env bash
# Installs the Debian 12 packages grooved needs to build, run and test.
# Idempotent: installs only what is missing. Uses sudo when not root.
# Extra package names given as arguments are installed too (make fuzz).
set -euo pipefail

packages=(
  build-essential cmake pkg-config
  libwebsockets-dev libjansson-dev libsqlite3-dev libcmocka-dev
  python3 python3-websockets sqlite3 strace curl
  chromium
  "$@"
)
# Node.js and npm drive the browser tests; use the machine's when it has them.
command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 || packages+=(nodejs npm)

install_node_modules() {
  # playwright-core from the lockfile; it never downloads a browser (the
  # tests use Debian's chromium).
  local root
  root="$(cd "$(dirname "$0")/.." && pwd)"
  if [ ! -d "$root/node_modules/playwright-core" ] ||
     [ "$root/package-lock.json" -nt "$root/node_modules/.package-lock.json" ]; then
    (cd "$root" && npm ci --no-audit --no-fund --loglevel=error)
  fi
}

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  install_node_modules
  exit 0
fi

SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
echo "install-deps: installing ${missing[*]}"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
install_node_modules
