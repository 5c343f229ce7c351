#!/usr/bin/env bash
# `npm test`: install what is missing, then run every test runner and end
# with one line "N passed, N failed" over all of them.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --test
exec npx --no-install tsx scripts/run-tests.ts "$@"
