#!/usr/bin/env python3
"""Tests of referenced_metrics.py.  Run: python -m unittest deploy/tools/test_referenced_metrics.py

Needs PyYAML; the cross-check against the promql-parser package runs when it is installed
(it is, in the deploy venv that deploy/check.sh sets up) and is reported as skipped otherwise.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import sys
import tempfile
import textwrap
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import referenced_metrics as rm  # noqa: E402

try:
    import promql_parser  # type: ignore
except ImportError:  # pragma: no cover - depends on the environment
    promql_parser = None


def grafana_to_promql(expr: str) -> str:
    """Replaces Grafana variables so an expression parses as plain PromQL."""
    expr = re.sub(r"\$__(rate_)?interval|\$__range", "5m", expr)
    expr = re.sub(r"\$\{[^}]*\}|\$[a-zA-Z_][a-zA-Z0-9_]*|\[\[[^\]]*\]\]", ".*", expr)
    return expr


def reference_names(expr: str) -> set[str]:
    """Metric names according to promql-parser."""
    names: set[str] = set()

    def visit(node):
        if isinstance(node, promql_parser.VectorSelector):
            if node.name:
                names.add(node.name)
            for m in node.matchers.matchers:
                if m.name == "__name__" and str(m.op).endswith("Equal"):
                    names.add(m.value)
        return True

    promql_parser.walk(promql_parser.parse(expr), visit)
    return names


class MetricNames(unittest.TestCase):
    def check(self, expr: str, expected: list[str]) -> None:
        self.assertEqual(sorted(set(rm.metric_names(expr))), sorted(expected), expr)

    def test_plain_selectors(self):
        self.check("up", ["up"])
        self.check('foo_total{a="b", c=~"d|e"}', ["foo_total"])
        self.check("rate(foo_total[5m])", ["foo_total"])
        self.check("foo:bar:rate5m", ["foo:bar:rate5m"])

    def test_aggregations_and_label_lists(self):
        self.check("sum by (job, instance) (rate(a_total[5m]))", ["a_total"])
        self.check("sum(rate(a_total[5m])) by (job)", ["a_total"])
        self.check("count without (instance) (b)", ["b"])
        self.check("topk(5, c)", ["c"])
        self.check('count_values("version", d)', ["d"])
        self.check("quantile(0.9, e)", ["e"])

    def test_vector_matching(self):
        self.check("a / on (job) group_left (version) b", ["a", "b"])
        self.check("a / ignoring (source) group_right b", ["a", "b"])
        self.check("a > bool 3", ["a"])
        self.check("a and on () b or c unless d", ["a", "b", "c", "d"])

    def test_modifiers_literals_and_subqueries(self):
        self.check("a offset 1h30m", ["a"])
        self.check("b @ start()", ["b"])
        self.check("max_over_time(rate(c[5m])[1h:1m])", ["c"])
        self.check("d > 1e6 and e < 0x1f and f != Inf and g == NaN", ["d", "e", "f", "g"])
        self.check("-h + .5 * 2", ["h"])
        self.check("histogram_quantile(0.95, sum by (le) (rate(i_bucket[5m])))", ["i_bucket"])

    def test_strings_and_name_matchers(self):
        self.check('label_replace(a, "dst", "$1", "src", "(x{1,2})")', ["a"])
        self.check('{__name__="by_name", job="x"}', ["by_name"])
        self.check('b{__name__=~"regex.*"}', ["b"])
        self.check("c{path=`raw \\string {}`}", ["c"])
        self.check('d{q="escaped \\" quote"}', ["d"])

    def test_comments_and_grafana_variables(self):
        self.check("# leading comment\na # trailing\n", ["a"])
        self.check('rate(a{instance=~"$instance"}[$__rate_interval])', ["a"])
        self.check("rate(b[${window}])", ["b"])
        self.check("rate(c[[[interval]]])", ["c"])
        self.check("sum(d) / $total", ["d"])

    def test_absent_and_up(self):
        self.check('absent(up{job="hivecast-tracker"})', ["up"])

    def test_errors(self):
        for bad in ['a{b="c}', "sum(a", "a{b=\"c\"", "a ; b", "a{b=\"c\"}}" + "{"]:
            with self.subTest(bad=bad), self.assertRaises(rm.PromQLScanError):
                rm.metric_names(bad)


class VariableQueries(unittest.TestCase):
    def test_forms(self):
        self.assertEqual(rm.variable_query_names("label_values(hivecast_agent_build_info, instance)"),
                         ["hivecast_agent_build_info"])
        self.assertEqual(rm.variable_query_names('label_values(a{job="x"}, instance)'), ["a"])
        self.assertEqual(rm.variable_query_names("label_values(job)"), [])
        self.assertEqual(rm.variable_query_names("query_result(sum by (job) (b))"), ["b"])
        self.assertEqual(rm.variable_query_names("metrics(hivecast_.*)"), [])
        self.assertEqual(rm.variable_query_names("label_names()"), [])


def write(dirpath: Path, name: str, text: str) -> Path:
    p = dirpath / name
    p.write_text(textwrap.dedent(text))
    return p


class Collect(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.dir = Path(self.tmp.name)
        write(self.dir, "r.yml", """
            groups:
              - name: g
                rules:
                  - record: job:x:rate5m
                    expr: sum by (job) (rate(x_total[5m]))
                  - record: job:y:ratio
                    expr: job:x:rate5m / on (job) sum by (job) (rate(y_total[5m]))
                  - alert: Down
                    expr: up{job="j"} == 0 and on () job:y:ratio < 1
        """)
        dash = {
            "templating": {"list": [
                {"type": "query", "name": "instance",
                 "query": {"query": "label_values(z_info, instance)"}},
                {"type": "datasource", "name": "datasource", "query": "prometheus"},
            ]},
            "panels": [
                {"type": "row", "panels": [
                    {"targets": [{"expr": "histogram_quantile(0.5, sum by (le) (rate(h_seconds_bucket[$__rate_interval])))"}]},
                ]},
                {"targets": [{"expr": 'sum(rate(h_seconds_count{instance=~"$instance"}[5m]))'},
                             {"expr": "job:x:rate5m"}]},
            ],
        }
        (self.dir / "d.json").write_text(json.dumps(dash))

    def tearDown(self):
        self.tmp.cleanup()

    def run_main(self, *extra: str) -> tuple[int, str, str]:
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            rc = rm.main(["--dashboards", str(self.dir / "*.json"), "--rules", str(self.dir / "*.yml"), *extra])
        return rc, out.getvalue(), err.getvalue()

    def test_excludes_recording_outputs_and_synthetic(self):
        rc, out, _ = self.run_main()
        self.assertEqual(rc, 0)
        self.assertEqual(out.split(), ["h_seconds_bucket", "h_seconds_count", "x_total", "y_total", "z_info"])

    def test_include_synthetic_and_families(self):
        rc, out, _ = self.run_main("--include-synthetic", "--families")
        self.assertEqual(rc, 0)
        self.assertEqual(out.split(), ["h_seconds", "up", "x_total", "y_total", "z_info"])

    def test_with_sources(self):
        rc, out, _ = self.run_main("--with-sources")
        self.assertEqual(rc, 0)
        line = next(l for l in out.splitlines() if l.startswith("x_total\t"))
        self.assertIn("r.yml", line)

    def test_malformed_expression_fails(self):
        write(self.dir, "bad.yml", """
            groups:
              - name: g
                rules:
                  - record: a
                    expr: sum(rate(x{a="b}[5m]))
        """)
        rc, out, err = self.run_main()
        self.assertEqual(rc, 1)
        self.assertEqual(out, "")
        self.assertIn("unterminated string", err)

    def test_no_inputs_fails(self):
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            rc = rm.main(["--dashboards", str(self.dir / "none*.json"), "--rules", str(self.dir / "none*.yml")])
        self.assertEqual(rc, 1)
        self.assertIn("no metric found", err.getvalue())


class RulesWithoutYaml(unittest.TestCase):
    """The PyYAML-free reader gives the same result as PyYAML."""

    def test_shipped_rule_files(self):
        import yaml

        files = sorted((rm.DEPLOY / "prometheus" / "rules").glob("*.yml"))
        self.assertTrue(files)
        for f in files:
            doc = yaml.safe_load(f.read_text())
            want_exprs = [str(r["expr"]) for g in doc["groups"] for r in g["rules"]]
            want_records = {r["record"] for g in doc["groups"] for r in g["rules"] if "record" in r}
            exprs, records = rm.rules_without_yaml(f.read_text())
            self.assertEqual(records, want_records, f.name)
            self.assertEqual([" ".join(e.split()) for e in exprs], [" ".join(e.split()) for e in want_exprs], f.name)

    def test_scalar_styles(self):
        text = textwrap.dedent("""
            groups:
              - name: g
                rules:
                  - record: "a:b"
                    expr: sum(x_total)   # comment
                  - record: 'c:d'
                    expr: >-
                      rate(y_total[5m])
                        / 2
                  - alert: A
                    expr: 'z{l=''v''} > 0'
                    for: 5m
                  - record: e:f
                    expr: w_total
                      + v_total
                    labels:
                      team: x
        """)
        exprs, records = rm.rules_without_yaml(text)
        self.assertEqual(records, {"a:b", "c:d", "e:f"})
        self.assertEqual([" ".join(e.split()) for e in exprs],
                         ["sum(x_total)", "rate(y_total[5m]) / 2", "z{l='v'} > 0", "w_total + v_total"])


class ShippedFiles(unittest.TestCase):
    """The real dashboard and rules: names match the reference parser and the contract."""

    def shipped_exprs(self) -> list[str]:
        exprs = []
        for f in sorted((rm.DEPLOY / "prometheus" / "rules").glob("*.yml")):
            exprs.extend(rm.load_rules(f)[0])
        for f in sorted((rm.DEPLOY / "grafana" / "dashboards").glob("*.json")):
            exprs.extend(rm.dashboard_exprs(json.loads(f.read_text())))
        return exprs

    @unittest.skipIf(promql_parser is None, "promql-parser not installed")
    def test_agrees_with_promql_parser(self):
        exprs = self.shipped_exprs()
        self.assertGreater(len(exprs), 30)
        for e in exprs:
            with self.subTest(expr=e):
                plain = grafana_to_promql(e)
                self.assertEqual(set(rm.metric_names(e)), reference_names(plain))

    def test_only_hivecast_or_prometheus_series(self):
        refs, records = rm.collect(rm.DEFAULT_DASHBOARDS, rm.DEFAULT_RULES)
        for name in refs:
            if name in records:
                continue
            self.assertTrue(name.startswith("hivecast_") or rm.SYNTHETIC.match(name), name)


if __name__ == "__main__":
    unittest.main()
