#!/usr/bin/env bash
# Installs the Debian 12 packages grooved needs. Idempotent: installs only
# what is missing; uses sudo when not root.
#   install-deps.sh run        build and run the server
#   install-deps.sh test       the above, plus what the tests need (python3-websockets,
#                              python3-prometheus-client, python3-brotli, strace, valgrind,
#                              Debian's chromium, Node.js + playwright-core via npm ci,
#                              groff for the man page, systemd-analyze for the unit,
#                              fuse3 for the power-loss tests, PostgreSQL and Redis for
#                              scripts/cluster and its tests, HAProxy in front of it)
#   install-deps.sh run PKG... extra Debian packages too (make fuzz)
set -euo pipefail

mode=${1:-run}
shift || true
root="$(cd "$(dirname "$0")/.." && pwd)"

packages=(build-essential cmake pkg-config libwebsockets-dev libjansson-dev libsqlite3-dev
  zlib1g-dev libbrotli-dev libhiredis-dev libpq-dev)
if [ "$mode" = test ]; then
  packages+=(libcmocka-dev python3 python3-websockets python3-prometheus-client python3-brotli
    sqlite3 strace valgrind curl chromium fonts-liberation groff-base systemd fuse3 libfuse3-dev
    postgresql redis-server haproxy)
  # Node.js and npm drive the browser tests; use the machine's when it has them.
  command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 || packages+=(nodejs npm)
fi
packages+=("$@")

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  echo "install-deps: installing ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

if [ "$mode" = test ]; then
  # playwright-core from the lockfile; it never downloads a browser (the
  # tests use Debian's chromium).
  if [ ! -d "$root/node_modules/playwright-core" ] ||
     [ "$root/package-lock.json" -nt "$root/node_modules/.package-lock.json" ]; then
    (cd "$root" && npm ci --no-audit --no-fund --loglevel=error)
  fi
fi
