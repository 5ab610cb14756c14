#!/usr/bin/env bash
# Regenerate requirements.lock: the production image's exact dependency set, with hashes, for
# Linux / CPython 3.11 (the Dockerfile's base image), whatever machine runs this. Only the
# project's runtime dependencies: no embedded extra (dev server binary), no test tools.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
.venv/bin/uv pip compile pyproject.toml \
  --generate-hashes \
  --python-version 3.11 \
  --python-platform x86_64-manylinux_2_28 \
  --no-header --annotation-style line \
  --output-file requirements.lock
{ echo "# Production dependencies with hashes (scripts/lock.sh; do not edit by hand)."; cat requirements.lock; } > requirements.lock.tmp
mv requirements.lock.tmp requirements.lock
