#!/usr/bin/env python3
"""Policy checks for the hivecast systemd units (stdlib only).

`systemd-analyze verify` proves a unit parses and its ExecStart exists; it does not prove that
the sandbox we promise is there. This script checks, per unit:

* every hardening directive of the baseline is set to the expected value;
* the service runs under a dedicated account (DynamicUser=yes, or User= with a sysusers.d
  entry in deploy/systemd/sysusers.d);
* for long-running servers, TimeoutStopSec is longer than the program's shutdown grace period
  (read from config/*.toml when present, else the documented default of 10s), with margin.

Usage: check_systemd.py [--repo DIR] UNIT...   (exit 1 with one line per problem)
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

# Directive -> accepted values (exact, after whitespace normalisation).
BASELINE: dict[str, set[str]] = {
    "NoNewPrivileges": {"yes", "true"},
    "ProtectSystem": {"strict"},
    "ProtectHome": {"yes", "true"},
    "PrivateTmp": {"yes", "true"},
    "PrivateDevices": {"yes", "true"},
    "ProtectKernelTunables": {"yes", "true"},
    "ProtectKernelModules": {"yes", "true"},
    "ProtectKernelLogs": {"yes", "true"},
    "ProtectControlGroups": {"yes", "true"},
    "ProtectClock": {"yes", "true"},
    "ProtectHostname": {"yes", "true"},
    "RestrictNamespaces": {"yes", "true"},
    "RestrictRealtime": {"yes", "true"},
    "RestrictSUIDSGID": {"yes", "true"},
    "LockPersonality": {"yes", "true"},
    "MemoryDenyWriteExecute": {"yes", "true"},
    "SystemCallArchitectures": {"native"},
    "CapabilityBoundingSet": {""},
}
# Directives that must be present (any value) and, when given, contain these tokens.
REQUIRED_TOKENS: dict[str, set[str]] = {
    "RestrictAddressFamilies": set(),
    "SystemCallFilter": {"@system-service"},
    "TimeoutStopSec": set(),
    "ExecStart": set(),
}
# Address families a network service may use; anything else is a finding.
ALLOWED_FAMILIES = {"AF_INET", "AF_INET6", "AF_UNIX", "AF_NETLINK"}

DEFAULT_GRACE_SECONDS = 10.0
MIN_MARGIN_SECONDS = 5.0

_UNITS = {
    "us": 1e-6, "usec": 1e-6, "ms": 1e-3, "msec": 1e-3,
    "s": 1.0, "sec": 1.0, "second": 1.0, "seconds": 1.0,
    "m": 60.0, "min": 60.0, "minute": 60.0, "minutes": 60.0,
    "h": 3600.0, "hr": 3600.0, "hour": 3600.0, "hours": 3600.0,
}


def parse_duration(text: str) -> float:
    """Parses a systemd / humantime span such as `30s`, `1min 30s`, `1m30s` or `45` (seconds)."""
    text = text.strip().strip('"')
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return float(text)
    total = 0.0
    pos = 0
    for m in re.finditer(r"\s*(\d+(?:\.\d+)?)\s*([a-z]+)", text):
        if m.start() != pos:
            raise ValueError(f"cannot parse duration {text!r}")
        unit = m.group(2)
        if unit not in _UNITS:
            raise ValueError(f"unknown unit {unit!r} in {text!r}")
        total += float(m.group(1)) * _UNITS[unit]
        pos = m.end()
    if pos != len(text) or pos == 0:
        raise ValueError(f"cannot parse duration {text!r}")
    return total


def parse_unit(path: Path) -> dict[str, dict[str, list[str]]]:
    """Section -> key -> every value in order (systemd allows repeated keys)."""
    sections: dict[str, dict[str, list[str]]] = {}
    current = None
    logical = ""
    for raw in path.read_text().splitlines():
        line = raw.rstrip()
        if logical:
            line = logical + " " + line.lstrip()
            logical = ""
        if line.endswith("\\"):
            logical = line[:-1]
            continue
        stripped = line.strip()
        if not stripped or stripped[0] in "#;":
            continue
        if stripped.startswith("[") and stripped.endswith("]"):
            current = sections.setdefault(stripped[1:-1], {})
            continue
        if current is None or "=" not in stripped:
            raise ValueError(f"{path}: unparsable line {raw!r}")
        key, value = stripped.split("=", 1)
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


def grace_seconds(repo: Path, program: str) -> float:
    """The shutdown grace of `program` (agent|tracker): config/<program>.toml, else the
    crate's checked-in defaults, else the documented 10s."""
    for cfg in (repo / "config" / f"{program}.toml", repo / program / "src" / "config" / "default.toml"):
        if cfg.is_file():
            m = re.search(r'(?m)^\s*shutdown_grace\s*=\s*"([^"]+)"', cfg.read_text())
            if m:
                return parse_duration(m.group(1))
    return DEFAULT_GRACE_SECONDS


def sysusers_accounts(repo: Path) -> set[str]:
    names: set[str] = set()
    for f in (repo / "deploy" / "systemd" / "sysusers.d").glob("*.conf"):
        for line in f.read_text().splitlines():
            parts = line.split()
            if len(parts) >= 2 and parts[0] in {"u", "u!"}:
                names.add(parts[1])
    return names


def check_unit(path: Path, repo: Path) -> list[str]:
    problems: list[str] = []
    try:
        unit = parse_unit(path)
    except ValueError as e:
        return [str(e)]
    svc = unit.get("Service")
    if svc is None:
        return [f"{path.name}: no [Service] section"]

    def last(key: str) -> str | None:
        vals = svc.get(key)
        return vals[-1] if vals else None

    for key, accepted in BASELINE.items():
        value = last(key)
        if value is None:
            problems.append(f"{path.name}: {key}= is missing")
        elif value not in accepted:
            problems.append(f"{path.name}: {key}={value} (expected one of {sorted(accepted)})")
    for key, tokens in REQUIRED_TOKENS.items():
        values = svc.get(key)
        if not values:
            problems.append(f"{path.name}: {key}= is missing")
            continue
        joined = " ".join(values).split()
        for t in tokens:
            if t not in joined:
                problems.append(f"{path.name}: {key}= lacks {t}")

    families = set(" ".join(svc.get("RestrictAddressFamilies", [])).split())
    if "none" not in families:
        extra = {f for f in families if f.lstrip("~") not in ALLOWED_FAMILIES}
        if extra:
            problems.append(f"{path.name}: RestrictAddressFamilies allows {sorted(extra)}")
        if any(f.startswith("~") for f in families):
            problems.append(f"{path.name}: RestrictAddressFamilies must be an allow-list, not ~deny")

    if last("DynamicUser") not in {"yes", "true"}:
        user = last("User")
        if not user:
            problems.append(f"{path.name}: neither DynamicUser=yes nor User= is set")
        elif user == "root" or user not in sysusers_accounts(repo):
            problems.append(f"{path.name}: User={user} has no entry in deploy/systemd/sysusers.d")

    exec_start = last("ExecStart") or ""
    stop = last("TimeoutStopSec")
    if stop is not None:
        try:
            stop_s = parse_duration(stop)
        except ValueError as e:
            problems.append(f"{path.name}: TimeoutStopSec: {e}")
        else:
            program = None
            if re.search(r"hivecast-agent\s+run\b", exec_start):
                program = "agent"
            elif re.search(r"hivecast-tracker\s+run\b", exec_start):
                program = "tracker"
            if program:
                grace = grace_seconds(repo, program)
                if stop_s < grace + MIN_MARGIN_SECONDS:
                    problems.append(
                        f"{path.name}: TimeoutStopSec={stop} is not at least {MIN_MARGIN_SECONDS:g}s "
                        f"above the {program} shutdown grace ({grace:g}s)"
                    )
    return problems


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repo", type=Path, default=Path(__file__).resolve().parents[2])
    ap.add_argument("units", nargs="+", type=Path)
    args = ap.parse_args(argv)
    problems: list[str] = []
    for u in args.units:
        problems.extend(check_unit(u, args.repo))
    for p in problems:
        print(p)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
