#!/usr/bin/env bash
# Debian chroots with newer Erlang/OTP releases, so the agent is compiled and
# tested on the OTPs operators run (27 on trixie, 29 on sid) while the host
# stays on bookworm's OTP 25. Their binaries need a newer glibc, so they only
# run inside the chroot.
#
#   otp-chroot.sh ensure  SUITE        build the chroot unless already complete
#   otp-chroot.sh present SUITE        exit 0 when a complete chroot exists
#   otp-chroot.sh run     SUITE CMD... run CMD inside, cwd = this clone's agent/
#   otp-chroot.sh exec    SUITE CMD... run CMD inside with this clone and the
#                                      temp dir at their own paths, the cwd and
#                                      environment kept (test nodes, builders)
#   otp-chroot.sh otp     SUITE        print the chroot's OTP release
#
# SUITE is trixie (OTP 27) or sid (OTP 29). Chroots live outside any clone in
# $BEAMDECK_OTP_CACHE (default /var/cache/beamdeck/otp) so every clone and CI
# run shares them. Needs root (debootstrap, chroot, mount namespaces).
set -euo pipefail

CACHE="${BEAMDECK_OTP_CACHE:-/var/cache/beamdeck/otp}"
ROOT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# Bumped when the recipe below changes, so old chroots are rebuilt.
RECIPE=3
# elixir: the agent's lint tests compile an Elixir module with elixirc;
# openssl: its TLS tests make certificates.
PACKAGES="erlang-nox,erlang-dev,erlang-src,erlang-dialyzer,elixir,openssl,ca-certificates"

die() { echo "otp-chroot: $*" >&2; exit 2; }

suite_ok() {
  case "$1" in trixie|sid) ;; *) die "unknown suite '$1' (expected trixie or sid)";; esac
}

# The Debian mirror the host already uses; the chroots come from the same one.
mirror() {
  local src
  for src in /etc/apt/sources.list.d/debian.sources /etc/apt/sources.list; do
    [ -f "$src" ] || continue
    local uri
    uri="$(grep -E '^(URIs:|deb )' "$src" | grep -Eo 'https?://[^ ]+/debian/?' | head -n1 || true)"
    [ -n "$uri" ] && { echo "$uri"; return; }
  done
  echo "http://deb.debian.org/debian"
}

dir_of() { echo "$CACHE/$1"; }
marker_of() { echo "$CACHE/$1.complete"; }

present() {
  local marker
  marker="$(marker_of "$1")"
  [ -f "$marker" ] && [ "$(cat "$marker")" = "recipe=$RECIPE" ] && [ -x "$(dir_of "$1")/usr/bin/erl" ]
}

unmount_under() {
  local target
  { findmnt -rn -o TARGET | grep -F "$1/" || true; } | sort -r | while read -r target; do
    umount -l "$target" || true
  done
}

# Debian's rebar3 package depends on common_test and reltool, which pull in
# wx, GTK and a desktop's worth of libraries that do not configure in a
# minbase chroot. rebar3 itself is one escript: unpack just the package's
# files; compile, eunit, xref and dialyzer need only what erlang-nox and
# erlang-dialyzer bring.
install_rebar3() {
  local root="$1"
  # A sid from a fixed mirror snapshot outlives its Release file's Valid-Until.
  chroot "$root" sh -c 'set -e
    apt-get -qq -o Acquire::Check-Valid-Until=false update
    cd /tmp && rm -f rebar3_*.deb && apt-get -qq download rebar3
    dpkg-deb -x /tmp/rebar3_*.deb / && rm -f /tmp/rebar3_*.deb
    rebar3 version' >>"$CACHE/$(basename "${root%.partial}").debootstrap.log" 2>&1 \
    || die "installing rebar3 in $root failed (log: $CACHE/$(basename "${root%.partial}").debootstrap.log)"
}

build() {
  local suite="$1" dir tmp
  dir="$(dir_of "$suite")"
  tmp="$dir.partial"
  # A fresh machine has no debootstrap: install it from Debian, like setup.sh does its packages.
  if ! command -v debootstrap >/dev/null; then
    echo "otp-chroot: installing debootstrap (apt-get)" >&2
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap; } >"$CACHE/apt-debootstrap.log" 2>&1 \
      || die "apt-get install debootstrap failed (log: $CACHE/apt-debootstrap.log)"
  fi
  echo "otp-chroot: building $suite chroot in $dir (about 300 MB, a minute or two)" >&2
  # A half-made chroot from an interrupted run is thrown away, never reused
  # (after unmounting anything an older, killed debootstrap left mounted).
  unmount_under "$tmp"
  rm -rf --one-file-system "$tmp"
  mkdir -p "$tmp"
  # In a private mount namespace, so the /proc debootstrap mounts inside the
  # target goes away with it even when it is killed.
  unshare --mount --propagation private -- debootstrap --variant=minbase --include="$PACKAGES" "$suite" "$tmp" "$(mirror)" >"$CACHE/$suite.debootstrap.log" 2>&1 \
    || { tail -n 20 "$CACHE/$suite.debootstrap.log" >&2; die "debootstrap $suite failed (log: $CACHE/$suite.debootstrap.log)"; }
  install_rebar3 "$tmp"
  # debootstrap writes no /etc/hosts; the TLS tests connect to "localhost".
  [ -f "$tmp/etc/hosts" ] || printf '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n' >"$tmp/etc/hosts"
  # Drop the downloaded .debs: they are a third of the size and never reused.
  rm -rf "$tmp"/var/cache/apt/archives/*.deb "$tmp"/var/lib/apt/lists/*
  rm -rf --one-file-system "$dir"
  mv "$tmp" "$dir"
  echo "recipe=$RECIPE" >"$(marker_of "$suite")"
}

ensure() {
  local suite="$1"
  mkdir -p "$CACHE"
  present "$suite" && return 0
  # One builder at a time per suite; a second caller waits, then finds it done.
  exec 9>"$CACHE/$suite.lock"
  flock 9
  if ! present "$suite"; then
    rm -f "$(marker_of "$suite")"
    build "$suite"
  fi
  flock -u 9
}

# Runs a command inside the chroot in a private mount namespace: /proc, /dev,
# the clone (at /src) and the host's node binary (the agent's WebSocket tests
# run a Node server; a binary built for the host's older glibc runs on the
# chroot's newer one) are mounted only for this process tree and vanish with
# it, so an interrupted run leaves no mounts behind. rebar3's _build goes to a
# per-suite, per-clone directory inside the chroot (REBAR_BASE_DIR), never the
# host's agent/_build, which holds OTP 25 beams.
run_in() {
  local suite="$1"; shift
  [ "$#" -gt 0 ] || die "run: no command given"
  present "$suite" || die "no $suite chroot; run: npm run test:otp (or $0 ensure $suite)"
  local dir key
  dir="$(dir_of "$suite")"
  key="$(printf '%s' "$ROOT_DIR" | sha256sum | cut -c1-12)"
  mkdir -p "$dir/src" "$dir/build/$key"
  local node
  node="$(command -v node || true)"
  [ -n "$node" ] && touch "$dir/usr/local/bin/node"
  BEAMDECK_CHROOT="$dir" BEAMDECK_SRC="$ROOT_DIR" BEAMDECK_BUILD="/build/$key" BEAMDECK_NODE="$node" \
    exec unshare --mount --propagation private -- bash -c '
      set -e
      mount -t proc proc "$BEAMDECK_CHROOT/proc"
      mount --rbind /dev "$BEAMDECK_CHROOT/dev"
      mount --bind "$BEAMDECK_SRC" "$BEAMDECK_CHROOT/src"
      [ -z "$BEAMDECK_NODE" ] || mount --bind "$BEAMDECK_NODE" "$BEAMDECK_CHROOT/usr/local/bin/node"
      exec chroot "$BEAMDECK_CHROOT" /usr/bin/env -i \
        HOME=/root PATH=/usr/local/bin:/usr/bin:/bin LANG=C.UTF-8 TERM=dumb \
        REBAR_BASE_DIR="$BEAMDECK_BUILD" \
        sh -c "cd /src/agent && exec \"\$@\"" sh "$@"
    ' sh "$@"
}

# Runs a command inside the chroot as if it ran on the host: this clone and
# the temp dir are bind-mounted at their own absolute paths, so paths the
# tests hand around (release dirs, log files, cache dirs) mean the same
# inside and out; the cwd and the environment are kept, only PATH and HOME
# are the chroot's. Every step execs, so the pid the caller holds ends up
# being CMD's own and its signals reach CMD. The network is the host's: a
# node inside registers with the host's epmd and dials the host's server.
exec_in() {
  local suite="$1"; shift
  [ "$#" -gt 0 ] || die "exec: no command given"
  present "$suite" || die "no $suite chroot; run: npm run test:otp (or $0 ensure $suite)"
  local dir tmp
  dir="$(dir_of "$suite")"
  tmp="$(cd "${TMPDIR:-/tmp}" && pwd -P)"
  mkdir -p "$dir$ROOT_DIR" "$dir$tmp"
  BEAMDECK_CHROOT="$dir" BEAMDECK_SRC="$ROOT_DIR" BEAMDECK_TMP="$tmp" BEAMDECK_CWD="$(pwd)" \
    exec unshare --mount --propagation private -- bash -c '
      set -e
      mount -t proc proc "$BEAMDECK_CHROOT/proc"
      mount --rbind /dev "$BEAMDECK_CHROOT/dev"
      mount --bind "$BEAMDECK_SRC" "$BEAMDECK_CHROOT$BEAMDECK_SRC"
      mount --bind "$BEAMDECK_TMP" "$BEAMDECK_CHROOT$BEAMDECK_TMP"
      cwd="$BEAMDECK_CWD" root="$BEAMDECK_CHROOT"
      unset BEAMDECK_CHROOT BEAMDECK_SRC BEAMDECK_TMP BEAMDECK_CWD
      exec chroot "$root" /usr/bin/env HOME=/root PATH=/usr/local/bin:/usr/bin:/bin \
        sh -c "cd \"\$0\" 2>/dev/null || cd /; exec \"\$@\"" "$cwd" "$@"
    ' sh "$@"
}

[ "$#" -ge 2 ] || { sed -n '2,17p' "$0" >&2; exit 2; }
cmd="$1"; suite="$2"; shift 2
suite_ok "$suite"
case "$cmd" in
  ensure) ensure "$suite" ;;
  present) present "$suite" ;;
  run) run_in "$suite" "$@" ;;
  exec) exec_in "$suite" "$@" ;;
  otp) run_in "$suite" erl -noshell -eval 'io:format("~s~n", [erlang:system_info(otp_release)]), halt().' ;;
  *) die "unknown command '$cmd'" ;;
esac
