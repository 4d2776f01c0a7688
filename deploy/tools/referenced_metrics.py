#!/usr/bin/env python3
"""Prints every metric name the Grafana dashboards and the Prometheus rules refer to.

One name per line, sorted, without duplicates. Excluded:

* outputs of recording rules (`record:` names in the rule files), since they are made by
  Prometheus, not exported by hivecast;
* series Prometheus makes itself (`up`, `scrape_*`, `ALERTS`, `ALERTS_FOR_STATE`), unless
  --include-synthetic is given.

Names are printed as written, so histogram series keep their suffix
(`hivecast_agent_segment_fetch_seconds_bucket`), which is how they appear in the exposition
text; --families strips `_bucket`, `_count` and `_sum` instead.

The PromQL scan is a small tokenizer (no external parser): selectors are identifiers followed
by `{`, `[`, an operator or the end; identifiers followed by `(` are functions, and the
aggregation operators (sum, count, topk…) are never metric names;
the label lists of by/without/on/ignoring/group_left/group_right are skipped, as are strings,
numbers, durations and Grafana variables ($var, ${var}, [[var]]). The test suite checks it
against the promql-parser package on every expression we ship.

Needs only python3 (3.11+); PyYAML is used when installed. The lead's live test can run
`python3 deploy/tools/referenced_metrics.py` directly; deploy/referenced-metrics.sh runs it in
the deploy venv.

Usage:
  referenced_metrics.py [--include-synthetic] [--families] [--with-sources]
                        [--dashboards GLOB]... [--rules GLOB]...
Default inputs: deploy/grafana/dashboards/*.json and deploy/prometheus/rules/*.yml.
"""

from __future__ import annotations

import argparse
import glob
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path

DEPLOY = Path(__file__).resolve().parents[1]
DEFAULT_DASHBOARDS = [str(DEPLOY / "grafana" / "dashboards" / "*.json")]
DEFAULT_RULES = [str(DEPLOY / "prometheus" / "rules" / "*.yml")]

SYNTHETIC = re.compile(r"^(up|scrape_[a-z_]+|ALERTS|ALERTS_FOR_STATE)$")
LABEL_LIST_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right"}
KEYWORDS = LABEL_LIST_KEYWORDS | {"bool", "and", "or", "unless", "offset", "atan2"}
LITERALS = {"inf", "nan"}
# Aggregation operators: they may be followed by `by (…)`/`without (…)` before their `(`.
AGGREGATORS = {
    "sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values",
    "bottomk", "topk", "quantile", "limitk", "limit_ratio",
}


class PromQLScanError(ValueError):
    """The expression could not be tokenized (unterminated string, stray character…)."""


@dataclass(frozen=True)
class Token:
    kind: str  # ident | string | number | var | punct | op
    text: str


_IDENT = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_NUMBER = re.compile(r"0[xX][0-9a-fA-F]+|(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?[a-zA-Z0-9]*")
_VAR = re.compile(r"\$\{[^}]*\}|\$[a-zA-Z_][a-zA-Z0-9_]*|\[\[[a-zA-Z0-9_:.]+\]\]")
_OPS = ("=~", "!~", "!=", "==", "<=", ">=", "=", "<", ">", "+", "-", "*", "/", "%", "^", "@")


def tokenize(expr: str) -> list[Token]:
    tokens: list[Token] = []
    i, n = 0, len(expr)
    while i < n:
        c = expr[i]
        if c.isspace():
            i += 1
            continue
        if c == "#":
            nl = expr.find("\n", i)
            i = n if nl < 0 else nl + 1
            continue
        if c in "\"'`":
            j = i + 1
            while j < n and expr[j] != c:
                j += 2 if (expr[j] == "\\" and c != "`") else 1
            if j >= n:
                raise PromQLScanError(f"unterminated string at offset {i} in {expr!r}")
            tokens.append(Token("string", expr[i + 1 : j]))
            i = j + 1
            continue
        m = _VAR.match(expr, i)
        if m:
            tokens.append(Token("var", m.group()))
            i = m.end()
            continue
        m = _IDENT.match(expr, i)
        if m:
            tokens.append(Token("ident", m.group()))
            i = m.end()
            continue
        m = _NUMBER.match(expr, i)
        if m:
            tokens.append(Token("number", m.group()))
            i = m.end()
            continue
        if c in "(){}[],":
            tokens.append(Token("punct", c))
            i += 1
            continue
        for op in _OPS:
            if expr.startswith(op, i):
                tokens.append(Token("op", op))
                i += len(op)
                break
        else:
            raise PromQLScanError(f"unexpected character {c!r} at offset {i} in {expr!r}")
    return tokens


def _skip_group(tokens: list[Token], i: int, open_: str, close: str) -> int:
    """Given tokens[i] == open_, returns the index after the matching close."""
    depth = 0
    while i < len(tokens):
        t = tokens[i]
        if t.kind == "punct" and t.text == open_:
            depth += 1
        elif t.kind == "punct" and t.text == close:
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    raise PromQLScanError(f"unbalanced {open_}{close}")


def _matchers_name(tokens: list[Token], start: int, end: int) -> list[str]:
    """Metric names given as `__name__="x"` inside a selector's braces."""
    names = []
    for k in range(start, end - 2):
        a, op, v = tokens[k], tokens[k + 1], tokens[k + 2]
        if a.kind == "ident" and a.text == "__name__" and op.kind == "op" and op.text == "=" and v.kind == "string":
            names.append(v.text)
    return names


def _check_balance(tokens: list[Token], expr: str) -> None:
    pairs = {")": "(", "]": "[", "}": "{"}
    stack: list[str] = []
    for t in tokens:
        if t.kind != "punct" or t.text == ",":
            continue
        if t.text in "([{":
            stack.append(t.text)
        elif not stack or stack.pop() != pairs[t.text]:
            raise PromQLScanError(f"unbalanced {t.text!r} in {expr!r}")
    if stack:
        raise PromQLScanError(f"unclosed {stack[-1]!r} in {expr!r}")


def metric_names(expr: str) -> list[str]:
    """Metric names selected by a PromQL expression, in order of appearance."""
    tokens = tokenize(expr)
    _check_balance(tokens, expr)
    names: list[str] = []
    i = 0
    while i < len(tokens):
        t = tokens[i]
        nxt = tokens[i + 1] if i + 1 < len(tokens) else None
        if t.kind == "punct" and t.text == "[":
            # Range or subquery: durations and variables only (`[5m]`, `[1h:1m]`).
            i = _skip_group(tokens, i, "[", "]")
            continue
        if t.kind == "punct" and t.text == "{":
            end = _skip_group(tokens, i, "{", "}")
            names.extend(_matchers_name(tokens, i + 1, end))
            i = end
            continue
        if t.kind != "ident":
            i += 1
            continue
        low = t.text.lower()
        if low in LABEL_LIST_KEYWORDS and nxt is not None and nxt.kind == "punct" and nxt.text == "(":
            i = _skip_group(tokens, i + 1, "(", ")")
            continue
        if low in KEYWORDS or low in LITERALS or low in AGGREGATORS:
            i += 1
            continue
        if nxt is not None and nxt.kind == "punct" and nxt.text == "(":
            i += 1  # function or aggregation
            continue
        names.append(t.text)
        if nxt is not None and nxt.kind == "punct" and nxt.text == "{":
            end = _skip_group(tokens, i + 1, "{", "}")
            names.extend(_matchers_name(tokens, i + 2, end))
            i = end
            continue
        i += 1
    return names


_LABEL_VALUES = re.compile(r"^\s*label_values\s*\((.*),\s*[a-zA-Z_][a-zA-Z0-9_]*\s*\)\s*$", re.S)
_LABEL_VALUES_BARE = re.compile(r"^\s*label_values\s*\(\s*[a-zA-Z_][a-zA-Z0-9_]*\s*\)\s*$")
_QUERY_RESULT = re.compile(r"^\s*query_result\s*\((.*)\)\s*$", re.S)


def variable_query_names(query: str) -> list[str]:
    """Metric names in a Grafana Prometheus variable query (label_values, query_result…)."""
    if _LABEL_VALUES_BARE.match(query):
        return []
    m = _LABEL_VALUES.match(query) or _QUERY_RESULT.match(query)
    if m:
        return metric_names(m.group(1))
    if re.match(r"^\s*(metrics|label_names)\s*\(", query):
        return []
    return metric_names(query)


def dashboard_exprs(doc: object) -> list[str]:
    """Every PromQL text of a dashboard: panel target `expr`s and variable queries."""
    exprs: list[str] = []

    def walk(node: object) -> None:
        if isinstance(node, dict):
            e = node.get("expr")
            if isinstance(e, str) and e.strip():
                exprs.append(e)
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(doc)
    return exprs


def dashboard_variable_queries(doc: dict) -> list[str]:
    out = []
    for var in (doc.get("templating") or {}).get("list", []):
        if var.get("type") != "query":
            continue
        q = var.get("query")
        if isinstance(q, dict):
            q = q.get("query")
        if isinstance(q, str) and q.strip():
            out.append(q)
    return out


def load_rules(path: Path) -> tuple[list[str], set[str]]:
    """(expressions, recording-rule output names) of a Prometheus rule file.

    Uses PyYAML when installed (the deploy venv has it); otherwise a small reader for the
    `record:`/`expr:` fields of rule files, so the script runs on a bare python3."""
    text = path.read_text()
    try:
        import yaml  # PyYAML
    except ImportError:
        return rules_without_yaml(text)
    doc = yaml.safe_load(text) or {}
    exprs: list[str] = []
    records: set[str] = set()
    for group in doc.get("groups", []):
        for rule in group.get("rules", []):
            if "record" in rule:
                records.add(str(rule["record"]))
            if "expr" in rule:
                exprs.append(str(rule["expr"]))
    return exprs, records


_RULE_KEY = re.compile(r"^(\s*)(- +)?(record|expr|alert):(?:\s+(.*?))?\s*$")
_ANY_KEY = re.compile(r"^\s*(- +)?[A-Za-z_][A-Za-z0-9_]*:(\s|$)")


def _unquote(v: str) -> str:
    if len(v) >= 2 and v[0] == v[-1] == "'":
        return v[1:-1].replace("''", "'")
    if len(v) >= 2 and v[0] == v[-1] == '"':
        return json.loads(v)
    return re.sub(r"\s+#.*$", "", v)


def rules_without_yaml(text: str) -> tuple[list[str], set[str]]:
    """`record:`/`expr:` values of a Prometheus rule file, without a YAML library.

    Handles plain, quoted and block (`|`, `|-`, `>`, `>-`) scalars and plain scalars
    continued on more-indented lines, which is what rule files use."""
    lines = text.splitlines()
    exprs: list[str] = []
    records: set[str] = set()
    i = 0
    while i < len(lines):
        m = _RULE_KEY.match(lines[i])
        if not m:
            i += 1
            continue
        indent = len(m.group(1)) + len(m.group(2) or "")
        key, value = m.group(3), (m.group(4) or "")
        body: list[str] = []
        j = i + 1
        if value[:1] in {"|", ">"}:
            while j < len(lines) and (not lines[j].strip() or len(lines[j]) - len(lines[j].lstrip()) > indent):
                body.append(lines[j].strip())
                j += 1
            value = "\n".join(body).strip()
        else:
            while (j < len(lines) and lines[j].strip() and not lines[j].lstrip().startswith("#")
                   and len(lines[j]) - len(lines[j].lstrip()) > indent and not _ANY_KEY.match(lines[j])):
                body.append(lines[j].strip())
                j += 1
            value = _unquote(" ".join([value, *body]).strip())
        if key == "record":
            records.add(value)
        elif key == "expr":
            exprs.append(value)
        i = j
    return exprs, records


def collect(dashboards: list[str], rules: list[str]) -> tuple[dict[str, set[str]], set[str]]:
    """name -> files referring to it, and the set of recording-rule outputs."""
    refs: dict[str, set[str]] = {}
    records: set[str] = set()

    def add(names: list[str], src: str) -> None:
        for n in names:
            refs.setdefault(n, set()).add(src)

    for pattern in rules:
        for f in sorted(glob.glob(pattern)):
            exprs, recs = load_rules(Path(f))
            records |= recs
            for e in exprs:
                add(metric_names(e), f)
    for pattern in dashboards:
        for f in sorted(glob.glob(pattern)):
            doc = json.loads(Path(f).read_text())
            for e in dashboard_exprs(doc):
                add(metric_names(e), f)
            for q in dashboard_variable_queries(doc):
                add(variable_query_names(q), f)
    return refs, records


def _display_path(path: str) -> str:
    p = Path(path).resolve()
    try:
        return str(p.relative_to(DEPLOY.parent))
    except ValueError:
        return str(p)


def family(name: str) -> str:
    return re.sub(r"_(bucket|count|sum)$", "", name)


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description="Metric names referenced by dashboards and rules.")
    ap.add_argument("--dashboards", action="append", help="glob of dashboard JSON files")
    ap.add_argument("--rules", action="append", help="glob of Prometheus rule files")
    ap.add_argument("--include-synthetic", action="store_true", help="keep up, scrape_*, ALERTS")
    ap.add_argument("--families", action="store_true", help="strip _bucket/_count/_sum")
    ap.add_argument("--with-sources", action="store_true", help="print name<TAB>files")
    args = ap.parse_args(argv)
    try:
        refs, records = collect(args.dashboards or DEFAULT_DASHBOARDS, args.rules or DEFAULT_RULES)
    except (PromQLScanError, ValueError, OSError) as e:
        print(f"referenced_metrics: {e}", file=sys.stderr)
        return 1
    out: dict[str, set[str]] = {}
    for name, srcs in refs.items():
        if name in records:
            continue
        if not args.include_synthetic and SYNTHETIC.match(name):
            continue
        key = family(name) if args.families else name
        out.setdefault(key, set()).update(srcs)
    if not out:
        print("referenced_metrics: no metric found (wrong paths?)", file=sys.stderr)
        return 1
    for name in sorted(out):
        if args.with_sources:
            rel = sorted(_display_path(s) for s in out[name])
            print(f"{name}\t{','.join(rel)}")
        else:
            print(name)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
