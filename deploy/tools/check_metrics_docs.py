#!/usr/bin/env python3
"""Keeps docs/metrics.md, the exporters' source and the dashboard/rules in step.

* every metric name defined in agent/src/metrics.rs and tracker/src/metrics.rs (string
  literals `"hivecast_…"` passed to the prometheus constructors) has a row in docs/metrics.md;
* every metric documented in a table of docs/metrics.md is defined in that source (when the
  source file exists), so the docs never promise a removed metric;
* every metric the dashboard and the rules refer to (deploy/tools/referenced_metrics.py,
  histogram suffixes stripped) is documented;
* every recording rule and alert defined in deploy/prometheus/rules is listed in the docs,
  and every alert's runbook_url points at a heading of docs/operations.md.

Usage: check_metrics_docs.py [--repo DIR]   (exit 1 with one line per problem)
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import referenced_metrics as rm  # noqa: E402

_DEF = re.compile(r'"(hivecast_(?:agent|tracker)_[a-z0-9_]+)"')
_ROW = re.compile(r"^\|\s*`(hivecast_(?:agent|tracker)_[a-z0-9_]+)`", re.M)


def defined_metrics(src: Path) -> set[str]:
    text = src.read_text()
    # Drop comments (doc comments mention names too) and the test module.
    text = text.split("#[cfg(test)]", 1)[0]
    text = re.sub(r"(?m)^\s*//.*$", "", text)
    return set(_DEF.findall(text))


def check(repo: Path) -> list[str]:
    problems: list[str] = []
    doc_path = repo / "docs" / "metrics.md"
    if not doc_path.is_file():
        return ["docs/metrics.md is missing"]
    doc = doc_path.read_text()
    documented = set(_ROW.findall(doc))
    for program in ("agent", "tracker"):
        src = repo / program / "src" / "metrics.rs"
        if not src.is_file():
            print(f"note: {src.relative_to(repo)} not found; {program} names not cross-checked")
            continue
        defined = defined_metrics(src)
        if not defined:
            problems.append(f"{src.relative_to(repo)}: no metric names found (parser out of date?)")
        for name in sorted(defined - documented):
            problems.append(f"{name} is defined in {src.relative_to(repo)} but not documented in docs/metrics.md")
        for name in sorted(n for n in documented - defined if n.startswith(f"hivecast_{program}_")):
            problems.append(f"{name} is documented but not defined in {src.relative_to(repo)}")

    try:
        refs, records = rm.collect([str(repo / "deploy" / "grafana" / "dashboards" / "*.json")],
                                   [str(repo / "deploy" / "prometheus" / "rules" / "*.yml")])
    except (rm.PromQLScanError, ValueError) as e:
        return problems + [f"cannot read the metric names of the dashboard/rules: {e}"]
    for name in sorted(refs):
        if name in records or rm.SYNTHETIC.match(name):
            continue
        if rm.family(name) not in documented:
            problems.append(f"{name} is used by the dashboard/rules but not documented in docs/metrics.md")
    for name in sorted(records):
        if f"`{name}`" not in doc:
            problems.append(f"recording rule {name} is not listed in docs/metrics.md")

    import yaml

    ops = repo / "docs" / "operations.md"
    anchors = set()
    if ops.is_file():
        for heading in re.findall(r"(?m)^#+\s+(.+?)\s*$", ops.read_text()):
            anchors.add(re.sub(r"[^a-z0-9 _-]", "", heading.lower()).replace(" ", "-"))
    for f in sorted((repo / "deploy" / "prometheus" / "rules").glob("*.yml")):
        for g in (yaml.safe_load(f.read_text()) or {}).get("groups", []):
            for r in g.get("rules", []):
                if "alert" not in r:
                    continue
                if f"`{r['alert']}`" not in doc:
                    problems.append(f"alert {r['alert']} is not listed in docs/metrics.md")
                url = (r.get("annotations") or {}).get("runbook_url", "")
                page, _, anchor = url.partition("#")
                if page != "docs/operations.md" or anchor not in anchors:
                    problems.append(f"alert {r['alert']}: runbook_url {url!r} is not a section of docs/operations.md")
    return problems


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repo", type=Path, default=Path(__file__).resolve().parents[2])
    args = ap.parse_args(argv)
    problems = check(args.repo)
    for p in problems:
        print(p)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
