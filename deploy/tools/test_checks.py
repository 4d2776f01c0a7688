#!/usr/bin/env python3
"""Tests of the deploy/ policy checkers: the shipped files pass, and each kind of mistake a
checker exists for is reported. Run: python -m unittest deploy/tools/test_checks.py

Each test works on a throwaway copy of the parts of the repository the checker reads, so the
real files are never modified. Needs PyYAML and dockerfile-parse (the deploy venv); the
compose test needs the venv's docker-compose and the dashboard compile test needs promtool,
and they are skipped without them.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import shutil
import subprocess
import sys
import tempfile
import unittest
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(HERE))

import check_compose  # noqa: E402
import check_config_keys  # noqa: E402
import check_dashboard  # noqa: E402
import check_dockerfiles  # noqa: E402
import check_k8s  # noqa: E402
import check_metrics_docs  # noqa: E402
import check_systemd  # noqa: E402

COPIED = [
    "deploy",
    "docs",
    "config",
    "agent/src/config/load.rs",
    "agent/src/metrics.rs",
    "tracker/src/metrics.rs",
    "tracker/src/config/default.toml",
    "agent/src/main.rs",
    "tracker/src/main.rs",
    "Cargo.toml",
]


def quiet(fn, *args):
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        rc = fn(*args)
    return rc, out.getvalue()


class RepoCopy(unittest.TestCase):
    """Gives each test `self.repo`, a private copy of the files the checkers read."""

    def setUp(self):
        self._tmp = tempfile.TemporaryDirectory()
        self.repo = Path(self._tmp.name)
        for rel in COPIED:
            src = REPO / rel
            dst = self.repo / rel
            if src.is_dir():
                shutil.copytree(src, dst, ignore=shutil.ignore_patterns("__pycache__"))
            elif src.is_file():
                dst.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, dst)
        # The Dockerfiles COPY from these folders of the build context.
        for d in ("agent", "tracker", "player-demo", "benches"):
            (self.repo / d).mkdir(exist_ok=True)
        (self.repo / "Cargo.lock").write_text("")

    def tearDown(self):
        self._tmp.cleanup()

    def edit(self, rel: str, old: str, new: str) -> None:
        p = self.repo / rel
        text = p.read_text()
        self.assertIn(old, text, f"fixture text not found in {rel}")
        p.write_text(text.replace(old, new, 1))


class Systemd(RepoCopy):
    def units(self):
        return sorted((self.repo / "deploy" / "systemd").glob("*.service"))

    def problems(self):
        out = []
        for u in self.units():
            out += check_systemd.check_unit(u, self.repo)
        return out

    def test_shipped_units_pass(self):
        self.assertEqual(self.problems(), [])

    def test_missing_hardening_is_reported(self):
        self.edit("deploy/systemd/hivecast-agent.service", "ProtectSystem=strict\n", "")
        self.assertIn("hivecast-agent.service: ProtectSystem= is missing", self.problems())

    def test_weak_value_is_reported(self):
        self.edit("deploy/systemd/hivecast-tracker.service", "ProtectSystem=strict", "ProtectSystem=full")
        self.assertTrue(any("ProtectSystem=full" in p for p in self.problems()))

    def test_stop_timeout_below_grace_is_reported(self):
        self.edit("deploy/systemd/hivecast-agent.service", "TimeoutStopSec=30s", "TimeoutStopSec=12s")
        self.assertTrue(any("TimeoutStopSec=12s" in p for p in self.problems()))

    def test_grace_from_config_is_honoured(self):
        (self.repo / "config").mkdir(exist_ok=True)
        (self.repo / "config" / "agent.toml").write_text('[server]\nshutdown_grace = "1m"\n')
        self.assertTrue(any("above the agent shutdown grace (60s)" in p for p in self.problems()))

    def test_root_or_unknown_user_is_reported(self):
        self.edit("deploy/systemd/hivecast-publish-digests.service", "User=hivecast", "User=root")
        self.assertTrue(any("User=root" in p for p in self.problems()))

    def test_address_family_deny_list_is_reported(self):
        self.edit("deploy/systemd/hivecast-tracker.service",
                  "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX",
                  "RestrictAddressFamilies=~AF_PACKET")
        self.assertTrue(any("allow-list" in p for p in self.problems()))

    def test_unparsable_unit_is_reported(self):
        u = self.repo / "deploy" / "systemd" / "broken.service"
        u.write_text("[Service]\nthis line has no equals sign\n")
        self.assertTrue(any("unparsable line" in p for p in check_systemd.check_unit(u, self.repo)))

    def test_durations(self):
        self.assertEqual(check_systemd.parse_duration("1min 30s"), 90)
        self.assertEqual(check_systemd.parse_duration("45"), 45)
        self.assertEqual(check_systemd.parse_duration("1m30s"), 90)
        for bad in ("abc", "5 parsecs", "", "10s garbage"):
            with self.subTest(bad=bad), self.assertRaises(ValueError):
                check_systemd.parse_duration(bad)


class Dockerfiles(RepoCopy):
    def problems(self):
        return quiet(check_dockerfiles.main, ["--repo", str(self.repo)])

    def test_shipped_dockerfiles_pass(self):
        rc, out = self.problems()
        self.assertEqual((rc, out), (0, ""))

    def test_root_user_is_reported(self):
        self.edit("deploy/container/agent.Dockerfile", "USER 10001:10001", "USER root")
        self.assertIn("final USER 'root' is root", self.problems()[1])

    def test_missing_healthcheck_is_reported(self):
        path = self.repo / "deploy/container/tracker.Dockerfile"
        lines = [l for l in path.read_text().splitlines(keepends=True)
                 if not l.startswith("HEALTHCHECK") and "CMD [\"/usr/local/bin/hivecast-healthcheck\"]" not in l]
        path.write_text("".join(lines))
        self.assertIn("tracker.Dockerfile: final stage has no HEALTHCHECK", self.problems()[1])

    def test_single_stage_is_reported(self):
        (self.repo / "deploy/container/agent.Dockerfile").write_text(
            "FROM debian:bookworm-slim\nUSER 10001\nHEALTHCHECK CMD true\nENTRYPOINT [\"x\"]\n")
        self.assertIn("agent.Dockerfile: not multi-stage", self.problems()[1])

    def test_missing_copy_source_is_reported(self):
        self.edit("deploy/container/agent.Dockerfile", "deploy/container/healthcheck.sh", "deploy/container/nope.sh")
        self.assertIn("COPY source deploy/container/nope.sh not found", self.problems()[1])

    def test_loopback_listener_is_reported(self):
        self.edit("deploy/container/agent.Dockerfile", "HIVECAST_AGENT__SERVER__LISTEN=0.0.0.0:8585",
                  "HIVECAST_AGENT__SERVER__LISTEN=127.0.0.1:8585")
        self.assertIn("HIVECAST_AGENT__SERVER__LISTEN=0.0.0.0:PORT missing", self.problems()[1])

    def test_missing_locked_release_build_is_reported(self):
        self.edit("deploy/container/tracker.Dockerfile", "cargo build --release --locked", "cargo build")
        self.assertIn("does not run `cargo build --release --locked -p hivecast-tracker`", self.problems()[1])


def compose_model(repo: Path) -> dict:
    exe = Path(sys.executable).parent / "docker-compose"
    if not exe.is_file():
        raise unittest.SkipTest("docker-compose (deploy venv) not installed")
    r = subprocess.run([str(exe), "-f", str(repo / "deploy/container/compose.yaml"), "config", "--format", "json"],
                       capture_output=True, text=True, check=True)
    return json.loads(r.stdout)


class Compose(RepoCopy):
    def setUp(self):
        super().setUp()
        self.model = compose_model(self.repo)

    def test_shipped_compose_passes(self):
        self.assertEqual(check_compose.check(self.model, self.repo), [])

    def test_public_port_is_reported(self):
        m = copy.deepcopy(self.model)
        m["services"]["agent-1"]["ports"][0]["host_ip"] = "0.0.0.0"
        self.assertTrue(any("agent-1: port" in p and "127.0.0.1" in p for p in check_compose.check(m, self.repo)))

    def test_missing_hardening_is_reported(self):
        m = copy.deepcopy(self.model)
        del m["services"]["tracker"]["read_only"]
        m["services"]["origin"]["cap_drop"] = []
        m["services"]["grafana"]["security_opt"] = []
        problems = check_compose.check(m, self.repo)
        self.assertIn("service tracker: read_only is not true", problems)
        self.assertIn("service origin: cap_drop does not contain ALL", problems)
        self.assertIn("service grafana: security_opt lacks no-new-privileges:true", problems)

    def test_unpinned_image_is_reported(self):
        m = copy.deepcopy(self.model)
        m["services"]["prometheus"]["image"] = "prom/prometheus:latest"
        self.assertIn("service prometheus: image 'prom/prometheus:latest' is not pinned to a tag",
                      check_compose.check(m, self.repo))

    def test_topology_is_checked(self):
        m = copy.deepcopy(self.model)
        del m["services"]["agent-3"]
        del m["services"]["digests"]
        problems = check_compose.check(m, self.repo)
        self.assertIn("service digests is missing", problems)
        self.assertTrue(any("at least 3 agents" in p for p in problems))

    def test_missing_bind_source_and_healthcheck_are_reported(self):
        m = copy.deepcopy(self.model)
        m["services"]["origin"]["volumes"][1]["source"] = str(self.repo / "nope.conf")
        del m["services"]["origin"]["healthcheck"]
        problems = check_compose.check(m, self.repo)
        self.assertTrue(any("bind mount source" in p for p in problems))
        self.assertIn("service origin: no health check (compose or Dockerfile HEALTHCHECK)", problems)

    def test_digest_publisher_must_watch(self):
        m = copy.deepcopy(self.model)
        m["services"]["digests"]["command"] = ["publish-digests", "/srv/hls"]
        self.assertIn("service digests: command is not `publish-digests DIR --watch`", check_compose.check(m, self.repo))

    def test_bad_json_input_fails(self):
        bad = self.repo / "bad.json"
        bad.write_text("{not json")
        rc, out = quiet(check_compose.main, ["--repo", str(self.repo), str(bad)])
        self.assertEqual(rc, 1)
        self.assertIn("not a compose JSON model", out)


class Kubernetes(RepoCopy):
    def problems(self):
        return check_k8s.check(self.repo / "deploy" / "kubernetes")

    def test_shipped_manifests_pass(self):
        self.assertEqual(self.problems(), [])

    def test_missing_probe_is_reported(self):
        self.edit("deploy/kubernetes/tracker.yaml", "          livenessProbe:", "          unusedProbe:")
        self.assertIn("Deployment/hivecast-tracker container tracker: no livenessProbe", self.problems())

    def test_bad_quantities_are_reported(self):
        self.edit("deploy/kubernetes/tracker.yaml", "memory: 1Gi", "memory: lots")
        self.edit("deploy/kubernetes/agent.yaml", "cpu: 200m", "cpu: \"4\"")
        problems = self.problems()
        self.assertTrue(any("limits.memory 'lots' is not a valid quantity" in p for p in problems))
        self.assertTrue(any("cpu request 4 above limit 2" in p for p in problems))

    def test_security_context_is_checked(self):
        self.edit("deploy/kubernetes/agent.yaml", "readOnlyRootFilesystem: true", "readOnlyRootFilesystem: false")
        self.edit("deploy/kubernetes/agent.yaml", "automountServiceAccountToken: false\n      enableServiceLinks",
                  "automountServiceAccountToken: true\n      enableServiceLinks")
        problems = self.problems()
        self.assertIn("DaemonSet/hivecast-agent container agent: readOnlyRootFilesystem is not true", problems)
        self.assertIn("DaemonSet/hivecast-agent: automountServiceAccountToken is not false", problems)

    def test_service_selector_mismatch_is_reported(self):
        self.edit("deploy/kubernetes/agent.yaml", "  internalTrafficPolicy: Local\n  selector:\n    app.kubernetes.io/name: hivecast-agent",
                  "  internalTrafficPolicy: Local\n  selector:\n    app.kubernetes.io/name: hivecast-agnet")
        self.assertIn("Service/hivecast-agent: selects no workload", self.problems())

    def test_short_termination_grace_is_reported(self):
        self.edit("deploy/kubernetes/tracker.yaml", "terminationGracePeriodSeconds: 30", "terminationGracePeriodSeconds: 10")
        self.assertTrue(any("terminationGracePeriodSeconds 10" in p for p in self.problems()))

    def test_kustomization_must_list_every_manifest(self):
        (self.repo / "deploy/kubernetes/extra.yaml").write_text(
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x, namespace: hivecast}\n")
        self.edit("deploy/kubernetes/kustomization.yaml", "  - networkpolicies.yaml\n", "  - networkpolicies.yaml\n  - gone.yaml\n")
        problems = self.problems()
        self.assertIn("extra.yaml is not listed in kustomization.yaml", problems)
        self.assertIn("kustomization.yaml lists gone.yaml, which does not exist", problems)

    def test_invalid_configmap_toml_is_reported(self):
        self.edit("deploy/kubernetes/agent.yaml", 'max_bytes = "384 MiB"', "max_bytes = = 3")
        self.assertTrue(any("invalid TOML" in p for p in self.problems()))


class ConfigKeys(RepoCopy):
    def run_check(self):
        return quiet(check_config_keys.main, ["--repo", str(self.repo)])

    def test_shipped_files_pass(self):
        rc, out = self.run_check()
        self.assertEqual(rc, 0, out)

    def test_unknown_env_key_is_reported(self):
        self.edit("deploy/kubernetes/tracker.yaml", "HIVECAST_TRACKER__ADMIN__LISTEN", "HIVECAST_TRACKER__SERVER__ADMIN_LISTEN")
        rc, out = self.run_check()
        self.assertEqual(rc, 1)
        self.assertIn("HIVECAST_TRACKER__SERVER__ADMIN_LISTEN is not a key of tracker", out)

    def test_unknown_toml_key_is_reported(self):
        self.edit("deploy/kubernetes/agent.yaml", "    retries = 2\n", "    retries = 2\n    retry_forever = true\n")
        rc, out = self.run_check()
        self.assertEqual(rc, 1)
        self.assertIn("unknown key origin.retry_forever", out)

    def test_type_mismatch_is_reported_against_config_file(self):
        (self.repo / "config").mkdir(exist_ok=True)
        (self.repo / "config" / "agent.toml").write_text(
            '[server]\nshutdown_grace = "10s"\nmax_connections = 1024\n'
            '[origin]\nallow = []\nconnect_timeout = "3s"\nheader_timeout = "5s"\ntotal_timeout = "20s"\nretries = 2\n'
            '[cache]\nmax_bytes = "256 MiB"\n[integrity]\nmode = "required"\n[log]\nlevel = "info"\njson = false\n'
            '# [[streams]]\n# name = "live"\n# url = "https://cdn.example.com/live/master.m3u8"\n')
        self.edit("deploy/kubernetes/agent.yaml", "    retries = 2\n", '    retries = "two"\n')
        rc, out = self.run_check()
        self.assertEqual(rc, 1)
        self.assertIn("origin.retries = 'two' has another type than the default 2", out)

    def test_unknown_flag_is_reported(self):
        self.edit("deploy/kubernetes/agent.yaml", "            - run\n", "            - run\n            - --bogus=1\n")
        rc, out = self.run_check()
        self.assertEqual(rc, 1)
        self.assertIn("--bogus is not a hivecast-agent option", out)

    def test_cli_flags_are_read_from_clap(self):
        (self.repo / "agent/src/main.rs").write_text(
            "struct Cli {\n    #[arg(long)]\n    print_default_config: bool,\n}\n"
            "enum C { Run {\n        /// Doc.\n        #[arg(long, value_name = \"FILE\")]\n        config: Option<P>,\n"
            "        #[arg(long = \"allow-origin\")]\n        allow: Vec<String>,\n"
            "        #[arg(short)]\n        verbose: bool,\n} }\n")
        self.assertEqual(check_config_keys.cli_flags(self.repo, "agent"),
                         {"--print-default-config", "--config", "--allow-origin"})
        self.assertIsNone(check_config_keys.cli_flags(self.repo / "nowhere", "agent"))

    def test_contract_flag_missing_from_cli_is_a_note(self):
        (self.repo / "agent/src/main.rs").write_text("struct Cli {\n    #[arg(long)]\n    config: P,\n}\n")
        rc, out = self.run_check()
        self.assertEqual(rc, 0, out)
        self.assertIn("--tracker is in the command-line contract but not (yet) declared", out)

    def test_agent_docs_table_is_a_key_reference(self):
        schema = check_config_keys.schema_from_agent_docs(self.repo / "agent/src/config/load.rs")
        self.assertTrue(schema.has("server", "admin_listen"))
        self.assertTrue(schema.has("streams", "url"))
        self.assertFalse(schema.has("server", "admin"))


class Dashboard(unittest.TestCase):
    def setUp(self):
        self.doc = json.loads((REPO / "deploy/grafana/dashboards/hivecast-overview.json").read_text())

    def test_shipped_dashboard_passes(self):
        self.assertEqual(check_dashboard.check_structure("d", self.doc), [])

    def test_structural_mistakes_are_reported(self):
        d = copy.deepcopy(self.doc)
        panels = check_dashboard.all_panels(d["panels"])
        query_panels = [p for p in panels if p["type"] != "row"]
        query_panels[1]["id"] = query_panels[0]["id"]
        query_panels[2]["gridPos"] = dict(query_panels[3]["gridPos"])
        query_panels[4]["datasource"] = {"type": "prometheus", "uid": "prometheus"}
        query_panels[5]["targets"][0]["expr"] = 'sum(rate(x{instance=~"$node"}[5m]))'
        problems = check_dashboard.check_structure("d", d)
        self.assertTrue(any("duplicate panel ids" in p for p in problems))
        self.assertTrue(any("overlaps" in p for p in problems))
        self.assertTrue(any("does not use the ${datasource} variable" in p for p in problems))
        self.assertIn("d: variable $node is used but not defined", problems)

    def test_out_of_grid_panel_is_reported(self):
        d = copy.deepcopy(self.doc)
        p = [p for p in check_dashboard.all_panels(d["panels"]) if p["type"] != "row"][0]
        p["gridPos"]["x"] = 20
        p["gridPos"]["w"] = 8
        self.assertTrue(any("bad gridPos" in x for x in check_dashboard.check_structure("d", d)))

    @unittest.skipIf(shutil.which("promtool") is None, "promtool not installed")
    def test_broken_expression_is_reported(self):
        items = [("panel 1", 'sum(rate(a_total[$__rate_interval]))'), ("panel 2", "sum(rate(b_total[5m])")]
        problems = check_dashboard.compile_exprs(items, "promtool")
        self.assertEqual(len(problems), 1)
        self.assertIn("panel 2: does not compile", problems[0])
        self.assertEqual(check_dashboard.compile_exprs(items[:1], "promtool"), [])

    def test_variables_are_replaced_for_promql(self):
        self.assertEqual(check_dashboard.to_promql('rate(x{i=~"$instance"}[$__rate_interval])'),
                         'rate(x{i=~".*"}[5m])')


class HealthcheckScript(unittest.TestCase):
    """deploy/container/healthcheck.sh against a real HTTP server on 127.0.0.1:0."""

    def setUp(self):
        import http.server
        import threading

        class Handler(http.server.BaseHTTPRequestHandler):
            status = 200

            def do_GET(self):  # noqa: N802 - http.server API
                code = Handler.status if self.path == "/healthz" else 404
                self.send_response(code)
                self.send_header("Content-Length", "3")
                self.end_headers()
                self.wfile.write(b"ok\n")

            def log_message(self, *args):
                pass

        self.handler = Handler
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.port = self.server.server_address[1]

    def tearDown(self):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)

    def run_script(self, port: int) -> subprocess.CompletedProcess:
        env = {"PATH": "/usr/bin:/bin", "HIVECAST_HEALTHCHECK_PORT": str(port)}
        return subprocess.run(["bash", str(REPO / "deploy/container/healthcheck.sh")], env=env,
                              capture_output=True, text=True, timeout=10)

    def test_healthy(self):
        self.assertEqual(self.run_script(self.port).returncode, 0)

    def test_unhealthy_status(self):
        self.handler.status = 503
        r = self.run_script(self.port)
        self.assertEqual(r.returncode, 1)
        self.assertIn("503", r.stderr)

    def test_nothing_listening(self):
        import socket

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            free = s.getsockname()[1]
        self.assertEqual(self.run_script(free).returncode, 1)


class MetricsDocs(RepoCopy):
    def test_shipped_docs_pass(self):
        self.assertEqual(check_metrics_docs.check(self.repo), [])

    def test_undocumented_metric_is_reported(self):
        self.edit("docs/metrics.md", "| `hivecast_agent_coalesced_requests_total` |", "| `coalesced` |")
        self.assertIn("hivecast_agent_coalesced_requests_total is defined in agent/src/metrics.rs "
                      "but not documented in docs/metrics.md", check_metrics_docs.check(self.repo))

    def test_documented_but_removed_metric_is_reported(self):
        self.edit("docs/metrics.md", "| `hivecast_agent_peers` |", "| `hivecast_agent_ghosts_total` | counter | — | x |\n| `hivecast_agent_peers` |")
        self.assertIn("hivecast_agent_ghosts_total is documented but not defined in agent/src/metrics.rs",
                      check_metrics_docs.check(self.repo))

    def test_unparsable_rule_is_reported_not_raised(self):
        self.edit("deploy/prometheus/rules/hivecast-recording.yml",
                  "(rate(hivecast_agent_downloaded_bytes_total[5m]))", "(rate(hivecast_agent_downloaded_bytes_total[5m])")
        problems = check_metrics_docs.check(self.repo)
        self.assertEqual(len(problems), 1)
        self.assertIn("cannot read the metric names", problems[0])

    def test_missing_runbook_section_is_reported(self):
        self.edit("docs/operations.md", "### Alert: HivecastTrackerNoAnnounces", "### Tracker silent")
        self.assertIn("alert HivecastTrackerNoAnnounces: runbook_url 'docs/operations.md#alert-hivecasttrackernoannounces' "
                      "is not a section of docs/operations.md", check_metrics_docs.check(self.repo))

    def test_undocumented_alert_is_reported(self):
        self.edit("docs/metrics.md", "`HivecastTrackerAbsent`", "`TrackerAbsent`")
        self.assertIn("alert HivecastTrackerAbsent is not listed in docs/metrics.md", check_metrics_docs.check(self.repo))


if __name__ == "__main__":
    unittest.main()
