#!/usr/bin/env bash
# `npm run bench`: every benchmark in one run, printed as tables.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec npx --no-install tsx scripts/bench.ts "$@"
