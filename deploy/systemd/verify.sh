#!/usr/bin/env bash
# Verifies the hivecast systemd units without installing anything on this machine.
#
# `systemd-analyze verify` loads a unit the way PID 1 would and checks that ExecStart points at
# an executable. It needs the unit's dependencies (sysinit.target, …) and the binaries, so we
# build a throwaway root: a copy of the host's own unit directory, executable stand-ins at the
# ExecStart paths, and our units in /etc/systemd/system, then run it with --root. It works
# without a running systemd (containers, CI). Unknown keys and bad values are only warnings
# for systemd (exit 0), so any output at all counts as a failure here.
#
# Checks, per unit:
#   1. systemd-analyze verify --root=TMP --man=no --generators=no   (no output allowed)
#   2. systemd-analyze security --offline=true --threshold=$THRESHOLD (exposure score, 0..100)
#   3. deploy/tools/check_systemd.py: the hardening baseline, dedicated user, and
#      TimeoutStopSec > shutdown grace
# and a self-test: a copy with a misspelt directive must be rejected by step 1.
#
# Usage: deploy/systemd/verify.sh            (exit 0 when every check passes)
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
THRESHOLD="${HIVECAST_SYSTEMD_EXPOSURE_THRESHOLD:-15}"
# systemd scores exposure 0..100 internally and prints it divided by 10: 15 means "1.5 OK".
PYTHON="${PYTHON:-python3}"

command -v systemd-analyze >/dev/null || { echo "systemd-analyze not found (apt-get install systemd)" >&2; exit 2; }

# Host unit directory to copy (dependencies such as sysinit.target live there).
SYSTEM_UNITS=""
for d in /usr/lib/systemd/system /lib/systemd/system; do
  if [ -e "$d/sysinit.target" ]; then SYSTEM_UNITS="$d"; break; fi
done
[ -n "$SYSTEM_UNITS" ] || { echo "no systemd unit directory with sysinit.target found" >&2; exit 2; }

TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT

make_root() {
  local root="$1"
  mkdir -p "$root/usr/lib/systemd" "$root/etc/systemd/system" "$root/usr/local/bin" "$root/usr/lib/sysusers.d"
  cp -a "$SYSTEM_UNITS" "$root/usr/lib/systemd/system"
  # Stand-ins for the binaries at the ExecStart paths (verify checks they are executable).
  local bin
  while IFS= read -r bin; do
    mkdir -p "$root$(dirname "$bin")"
    printf '#!/bin/sh\nexit 0\n' >"$root$bin"
    chmod 0755 "$root$bin"
  done < <(grep -ho '^ExecStart=[^ ]*' "$HERE"/*.service | sed 's/^ExecStart=[-@:+!]*//' | sort -u)
  cp "$HERE"/*.service "$root/etc/systemd/system/"
  cp "$HERE"/sysusers.d/*.conf "$root/usr/lib/sysusers.d/"
}

# verify_unit ROOT UNIT -> prints the output of systemd-analyze verify; fails on any output.
verify_unit() {
  local root="$1" unit="$2" out rc=0
  out="$(systemd-analyze verify --root="$root" --man=no --generators=no "$unit" 2>&1)" || rc=$?
  if [ "$rc" -ne 0 ] || [ -n "$out" ]; then
    printf '%s\n' "$out"
    return 1
  fi
}

ROOT="$TMP/root"
make_root "$ROOT"
fail=0
units=()
for f in "$HERE"/*.service; do units+=("$(basename "$f")"); done

for u in "${units[@]}"; do
  if out="$(verify_unit "$ROOT" "$u")"; then
    echo "ok   verify   $u"
  else
    echo "FAIL verify   $u"; printf '%s\n' "$out" | sed 's/^/       /'; fail=1
  fi
  rc=0
  score="$(systemd-analyze security --offline=true --root="$ROOT" --threshold="$THRESHOLD" --no-pager "$u" 2>&1)" || rc=$?
  level="$(printf '%s\n' "$score" | grep -o 'Overall exposure level for [^:]*: [0-9.]* [A-Z]*' | sed 's/.*: //' || true)"
  if [ "$rc" -eq 0 ] && [ -n "$level" ]; then
    echo "ok   security $u (exposure $level, threshold $THRESHOLD/100)"
  else
    echo "FAIL security $u (exposure ${level:-unknown}, threshold $THRESHOLD/100)"
    printf '%s\n' "$score" | grep '✗' | sed 's/^/       /' || true
    fail=1
  fi
done

if out="$("$PYTHON" "$REPO/deploy/tools/check_systemd.py" --repo "$REPO" "$HERE"/*.service)"; then
  echo "ok   policy   ${units[*]}"
else
  echo "FAIL policy"; printf '%s\n' "$out" | sed 's/^/       /'; fail=1
fi

# Self-test: the strict verify above must catch a misspelt key and a missing binary.
BAD="$TMP/bad"
make_root "$BAD"
sed -i 's/^ProtectSystem=strict/ProtectSystm=strict/' "$BAD/etc/systemd/system/hivecast-agent.service"
if verify_unit "$BAD" hivecast-agent.service >/dev/null; then
  echo "FAIL self-test: a misspelt directive was not reported"; fail=1
else
  echo "ok   self-test: misspelt directive rejected"
fi
BAD2="$TMP/bad2"
make_root "$BAD2"
rm -f "$BAD2/usr/local/bin/hivecast-tracker"
if verify_unit "$BAD2" hivecast-tracker.service >/dev/null; then
  echo "FAIL self-test: a missing ExecStart binary was not reported"; fail=1
else
  echo "ok   self-test: missing ExecStart binary rejected"
fi
if out="$("$PYTHON" "$REPO/deploy/tools/check_systemd.py" --repo "$REPO" "$BAD/etc/systemd/system/hivecast-agent.service")"; then
  echo "FAIL self-test: policy check accepted a unit without ProtectSystem"; fail=1
else
  echo "ok   self-test: policy check rejects a unit without ProtectSystem"
fi

exit "$fail"
