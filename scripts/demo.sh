#!/usr/bin/env bash
# Set up and run the main job on the embedded stack (Temporal dev server, emulator, worker,
# SQLite ledger, local blobs): a durable text-to-image that ends with a stored PNG.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
exec .venv/bin/studio demo "$@"
