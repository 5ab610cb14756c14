#!/usr/bin/env bash
# Lint the project: ruff check, ruff format --check, mypy (config in pyproject.toml).
# Every check runs even when an earlier one fails; the summary names each that failed and the
# exit status is non-zero if any did. Sets up only what linting needs (bootstrap.sh --lint);
# `--skip-bootstrap` when the caller already ran bootstrap.sh.
set -uo pipefail
cd "$(dirname "$0")/.."
if [ "${1:-}" != "--skip-bootstrap" ]; then
  bash scripts/bootstrap.sh --lint || exit 1
fi

failed=()
run() {
  local name=$1
  shift
  echo "== $name"
  if ! "$@"; then
    failed+=("$name")
  fi
}
run "ruff check" .venv/bin/ruff check .
run "ruff format --check" .venv/bin/ruff format --check .
run "mypy" .venv/bin/mypy
if [ "${#failed[@]}" -gt 0 ]; then
  printf 'lint failed: %s\n' "$(IFS=,; echo "${failed[*]}" | sed 's/,/, /g')" >&2
  exit 1
fi
echo "lint passed: ruff check, ruff format --check, mypy"
