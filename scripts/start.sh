#!/usr/bin/env bash
# `npm start`: install what is missing, then run the server on the embedded
# database with the dashboard and a demo node to look at.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --web
exec npx --no-install tsx scripts/start.ts "$@"
