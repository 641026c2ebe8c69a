#!/usr/bin/env bash
# Installs what the fuzz targets need beyond scripts/install-deps.sh: clang 14 with its
# sanitizer runtimes and libFuzzer (Debian packages). Used by scripts/fuzz.sh.
set -euo pipefail
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
pkgs="clang libclang-rt-14-dev libfuzzer-14-dev"
missing=""
for p in $pkgs; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done
if [ -n "$missing" ]; then
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $missing
fi
