#!/usr/bin/env bash
# Install and build whatever is missing, idempotently: Debian packages
# (Erlang/OTP, Elixir, rebar3, Chromium, PostgreSQL, HAProxy), npm packages, the
# Prisma client, the compiled CLI, the agent, and (with --web) the Next.js build.
# Usage: scripts/setup.sh [--web] [--test]
set -euo pipefail
cd "$(dirname "$0")/.."

want_web=0; want_test=0
for a in "$@"; do
  case "$a" in
    --web) want_web=1 ;;
    --test) want_test=1; want_web=1 ;;
    *) echo "setup.sh: unknown option $a" >&2; exit 2 ;;
  esac
done

say() { printf '\033[1m[setup]\033[0m %s\n' "$*"; }
die() { printf '\033[1;31m[setup] FAILED:\033[0m %s\n' "$*" >&2; exit 1; }

# ---- Debian packages ----
need=()
command -v erl >/dev/null || need+=(erlang-nox erlang-dev)
ls /usr/lib/erlang/usr/include/erl_nif.h >/dev/null 2>&1 || need+=(erlang-dev)
ls /usr/lib/erlang/lib/stdlib-*/src/supervisor.erl >/dev/null 2>&1 || need+=(erlang-src)
command -v elixir >/dev/null || need+=(elixir)
command -v rebar3 >/dev/null || need+=(rebar3)
# Chromium, PostgreSQL and HAProxy are for the tests (browser e2e, the
# PostgreSQL suite, agents failing over behind a load balancer).
if [ "$want_test" = 1 ]; then
  [ -x /usr/bin/chromium ] || need+=(chromium)
  ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
  command -v haproxy >/dev/null || need+=(haproxy)
fi
if [ ${#need[@]} -gt 0 ]; then
  say "installing Debian packages: ${need[*]}"
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq >/tmp/beamdeck-apt.log 2>&1 || die "apt-get update failed (see /tmp/beamdeck-apt.log)"
  $SUDO apt-get install -y -qq "${need[@]}" >>/tmp/beamdeck-apt.log 2>&1 || die "apt-get install ${need[*]} failed (see /tmp/beamdeck-apt.log)"
fi
command -v erl >/dev/null || die "Erlang/OTP is still missing"

# ---- npm packages ----
# Decided by the lock file's content, not its mtime: a git checkout or worktree gives
# package-lock.json a new mtime, and `npm ci` would delete a node_modules that matches it.
lock_hash=$(sha256sum package-lock.json | cut -c1-16)
stamp=node_modules/.beamdeck-lock
if [ -f node_modules/.package-lock.json ] && [ ! -f "$stamp" ] && [ node_modules/.package-lock.json -nt package-lock.json ]; then
  echo "$lock_hash" >"$stamp" # installed before the stamp existed
fi
if [ ! -f node_modules/.package-lock.json ] || [ "$(cat "$stamp" 2>/dev/null)" != "$lock_hash" ]; then
  say "installing npm packages (npm ci)"
  npm ci --no-audit --no-fund --loglevel=error >/tmp/beamdeck-npm.log 2>&1 || { tail -20 /tmp/beamdeck-npm.log >&2; die "npm ci failed (full log: /tmp/beamdeck-npm.log)"; }
  echo "$lock_hash" >"$stamp"
fi

# ---- Prisma client ----
if [ ! -f generated/prisma/client.ts ] || [ prisma/schema.prisma -nt generated/prisma/client.ts ]; then
  say "generating the Prisma client"
  npx --no-install prisma generate >/tmp/beamdeck-prisma.log 2>&1 || { cat /tmp/beamdeck-prisma.log >&2; die "prisma generate failed"; }
fi

# ---- the compiled CLI (bin/beamdeck.js falls back to the sources while it is stale) ----
if [ ! -f dist/cli/main.mjs ] || [ -n "$(find server generated -newer dist/cli/main.mjs -print -quit)" ]; then
  say "compiling the CLI (esbuild)"
  node scripts/build-cli.mjs >/tmp/beamdeck-cli.log 2>&1 || { cat /tmp/beamdeck-cli.log >&2; die "CLI build failed"; }
fi

# ---- the agent ----
say "building the agent (rebar3 compile)"
(cd agent && rebar3 compile >/tmp/beamdeck-agent.log 2>&1) || { tail -30 /tmp/beamdeck-agent.log >&2; die "agent build failed (full log: /tmp/beamdeck-agent.log)"; }

# ---- the dashboard ----
if [ "$want_web" = 1 ]; then
  hash=$(cat package-lock.json next.config.js tsconfig.json $(find app server/routers -type f | sort) 2>/dev/null | sha256sum | cut -c1-16)
  if [ "$(cat .next/BEAMDECK_BUILD_HASH 2>/dev/null)" != "$hash" ]; then
    say "building the dashboard (next build)"
    NEXT_TELEMETRY_DISABLED=1 npx --no-install next build >/tmp/beamdeck-next.log 2>&1 || { tail -40 /tmp/beamdeck-next.log >&2; die "next build failed (full log: /tmp/beamdeck-next.log)"; }
    echo "$hash" > .next/BEAMDECK_BUILD_HASH
  fi
fi
say "ready"
