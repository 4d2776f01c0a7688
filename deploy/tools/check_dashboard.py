#!/usr/bin/env python3
"""Checks the Grafana dashboard(s) and provisioning files.

* the committed JSON equals what deploy/grafana/generate-dashboard.py produces;
* structure: uid/title/schemaVersion, unique panel ids, panels inside the 24-column grid and
  not overlapping, every query panel on the `${datasource}` variable with unique refIds and a
  non-empty expr, every `$variable` used is defined;
* every PromQL expression compiles: they are written, with Grafana variables replaced, into a
  temporary rule file that `promtool check rules` parses;
* provisioning: the data source file defines a Prometheus data source, and the dashboard
  provider's path is where compose mounts deploy/grafana/dashboards.

Usage: check_dashboard.py [--repo DIR] [--promtool PATH]   (exit 1 with one line per problem)
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

BUILTIN_VARS = {"__rate_interval", "__interval", "__range", "__interval_ms", "__range_s", "__dashboard", "__from", "__to"}
_VAR = re.compile(r"\$\{([a-zA-Z_][a-zA-Z0-9_]*)(?::[^}]*)?\}|\$([a-zA-Z_][a-zA-Z0-9_]*)|\[\[([a-zA-Z0-9_]+)\]\]")


def to_promql(expr: str) -> str:
    expr = re.sub(r"\$__rate_interval|\$__interval|\$__range|\$\{__rate_interval\}", "5m", expr)
    return _VAR.sub(".*", expr)


def all_panels(panels: list[dict]) -> list[dict]:
    out = []
    for p in panels:
        out.append(p)
        out.extend(all_panels(p.get("panels") or []))
    return out


def check_structure(name: str, d: dict) -> list[str]:
    problems: list[str] = []
    for k in ("uid", "title", "schemaVersion", "panels", "templating"):
        if k not in d:
            problems.append(f"{name}: no {k}")
    variables = {v.get("name") for v in (d.get("templating") or {}).get("list", [])}
    panels = all_panels(d.get("panels") or [])
    ids = [p.get("id") for p in panels]
    dups = {i for i in ids if ids.count(i) > 1}
    if dups:
        problems.append(f"{name}: duplicate panel ids {sorted(dups)}")
    cells: dict[tuple[int, int], int] = {}
    for p in panels:
        pid = p.get("id")
        g = p.get("gridPos") or {}
        x, y, w, h = (g.get(k) for k in ("x", "y", "w", "h"))
        if None in (x, y, w, h) or w <= 0 or h <= 0 or x < 0 or x + w > 24:
            problems.append(f"{name}: panel {pid} has a bad gridPos {g}")
            continue
        for cx in range(x, x + w):
            for cy in range(y, y + h):
                if (cx, cy) in cells:
                    problems.append(f"{name}: panel {pid} overlaps panel {cells[(cx, cy)]}")
                    break
                cells[(cx, cy)] = pid
            else:
                continue
            break
        if p.get("type") == "row":
            continue
        if not p.get("title"):
            problems.append(f"{name}: panel {pid} has no title")
        if (p.get("datasource") or {}).get("uid") != "${datasource}":
            problems.append(f"{name}: panel {pid} does not use the ${{datasource}} variable")
        targets = p.get("targets") or []
        if not targets:
            problems.append(f"{name}: panel {pid} ({p.get('title')}) has no queries")
        refids = [t.get("refId") for t in targets]
        if len(set(refids)) != len(refids):
            problems.append(f"{name}: panel {pid} has duplicate refIds")
        for t in targets:
            if not (t.get("expr") or "").strip():
                problems.append(f"{name}: panel {pid} query {t.get('refId')} has no expr")
    text = json.dumps(d)
    for m in _VAR.finditer(text):
        v = m.group(1) or m.group(2) or m.group(3)
        if v not in variables and v not in BUILTIN_VARS:
            problems.append(f"{name}: variable ${v} is used but not defined")
    return problems


def exprs(d: dict) -> list[tuple[str, str]]:
    out = []
    for p in all_panels(d.get("panels") or []):
        for t in p.get("targets") or []:
            if t.get("expr"):
                out.append((f"panel {p.get('id')} {p.get('title')!r} {t.get('refId')}", t["expr"]))
    for v in (d.get("templating") or {}).get("list", []):
        q = v.get("query")
        q = q.get("query") if isinstance(q, dict) else q
        if v.get("type") == "query" and isinstance(q, str):
            m = re.match(r"^\s*label_values\((.*),\s*\w+\s*\)\s*$", q, re.S)
            if m:
                out.append((f"variable {v.get('name')}", m.group(1)))
    return out


def compile_exprs(items: list[tuple[str, str]], promtool: str) -> list[str]:
    rules = {"groups": [{"name": "dashboard", "rules": [
        {"record": f"dashboard:expr_{i}", "expr": to_promql(e)} for i, (_, e) in enumerate(items)]}]}
    with tempfile.TemporaryDirectory() as tmp:
        f = Path(tmp) / "dashboard-exprs.yml"
        f.write_text(yaml.safe_dump(rules, sort_keys=False))
        r = subprocess.run([promtool, "check", "rules", str(f)], capture_output=True, text=True)
    if r.returncode == 0:
        return []
    problems = []
    out = r.stdout + r.stderr
    for i, (where, e) in enumerate(items):
        if re.search(rf"dashboard:expr_{i}\b", out) or f"group \"dashboard\", rule {i + 1}," in out:
            problems.append(f"{where}: does not compile: {to_promql(e)!r}")
    return problems or [f"promtool check rules failed: {out.strip()}"]


def check_provisioning(repo: Path) -> list[str]:
    problems: list[str] = []
    prov = repo / "deploy" / "grafana" / "provisioning"
    ds_files = sorted((prov / "datasources").glob("*.yml"))
    if not ds_files:
        problems.append("grafana provisioning: no data source file")
    for f in ds_files:
        doc = yaml.safe_load(f.read_text()) or {}
        if not any(d.get("type") == "prometheus" and d.get("url") for d in doc.get("datasources", [])):
            problems.append(f"{f.name}: no Prometheus data source with a url")
    providers = []
    for f in sorted((prov / "dashboards").glob("*.yml")):
        providers += (yaml.safe_load(f.read_text()) or {}).get("providers", [])
    if not providers:
        problems.append("grafana provisioning: no dashboard provider")
    compose = repo / "deploy" / "container" / "compose.yaml"
    if compose.is_file():
        svc = (yaml.safe_load(compose.read_text()).get("services") or {}).get("grafana") or {}
        mounts = {}
        for v in svc.get("volumes", []):
            if isinstance(v, str) and ":" in v:
                src, dst = v.split(":")[:2]
                mounts[src] = dst
        target = mounts.get("../grafana/dashboards")
        if target is None:
            problems.append("compose grafana: deploy/grafana/dashboards is not mounted")
        elif not any((p.get("options") or {}).get("path") == target for p in providers):
            problems.append(f"grafana provisioning: no provider reads {target} (where compose mounts the dashboards)")
        if mounts.get("../grafana/provisioning") != "/etc/grafana/provisioning":
            problems.append("compose grafana: provisioning is not mounted at /etc/grafana/provisioning")
    return problems


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repo", type=Path, default=Path(__file__).resolve().parents[2])
    ap.add_argument("--promtool", default="promtool")
    args = ap.parse_args(argv)
    repo = args.repo
    problems: list[str] = []
    gen = repo / "deploy" / "grafana" / "generate-dashboard.py"
    r = subprocess.run([sys.executable, str(gen), "--check"], capture_output=True, text=True)
    if r.returncode != 0:
        problems.append((r.stdout + r.stderr).strip())
    dashboards = sorted((repo / "deploy" / "grafana" / "dashboards").glob("*.json"))
    if not dashboards:
        problems.append("no dashboard JSON in deploy/grafana/dashboards")
    n = 0
    for f in dashboards:
        try:
            d = json.loads(f.read_text())
        except json.JSONDecodeError as e:
            problems.append(f"{f.name}: invalid JSON: {e}")
            continue
        problems += check_structure(f.name, d)
        items = exprs(d)
        n += len(items)
        problems += [f"{f.name}: {p}" for p in compile_exprs(items, args.promtool)]
    problems += check_provisioning(repo)
    print(f"note: {len(dashboards)} dashboard(s), {n} PromQL expressions compiled with promtool")
    for p in problems:
        print(p)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
