#!/usr/bin/env bash
# Sets up and runs the tests, ruff and the import-linter contracts.
# Needs only python3.11.
# Uses the embedded defaults (SQLite, the project's own Redis) unless
# DATABASE_URL / REDIS_URL point elsewhere. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")"
source scripts/venv.sh requirements-dev.txt
# The dashboard's browser test drives Debian's Chromium (Playwright's own
# browser download does not work offline). CI must have it; elsewhere it is
# installed when we may, else that one test is skipped.
scripts/ensure_chromium.sh

ruff check .
ruff format --check .
# the layers of .importlinter (README, Architecture)
lint-imports --no-cache
exec python -m pytest "$@"
