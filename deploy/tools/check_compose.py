#!/usr/bin/env python3
"""Policy checks for deploy/container/compose.yaml, on the fully resolved model.

Input: the JSON of `docker-compose -f compose.yaml config --format json` (YAML anchors and
merge keys resolved, paths absolute), given as a file or on stdin. Checks:

* the demo topology: origin, packager, digests (publish-digests --watch on the HLS volume),
  tracker, at least 3 agents, prometheus, grafana;
* hardening on every service: read_only root filesystem, cap_drop ALL, no-new-privileges;
  a non-root `user` on every service built from this repository;
* every published port is bound to 127.0.0.1;
* images are pinned (explicit tag, not `latest`) unless built here;
* every service has a health check: in compose, or a HEALTHCHECK in the Dockerfile it is
  built from; `disable: true` is only accepted for services without a listener
  (network_mode none);
* build contexts, Dockerfiles and bind-mounted host paths exist;
* Prometheus targets in deploy/container/prometheus-targets name real services and ports.

Usage: check_compose.py [--repo DIR] [CONFIG_JSON]   (exit 1 with one line per problem)
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import yaml

REQUIRED = ["origin", "packager", "digests", "tracker", "prometheus", "grafana"]


def image_pinned(image: str) -> bool:
    if "@sha256:" in image:
        return True
    name = image.rsplit("/", 1)[-1]
    return ":" in name and not name.endswith(":latest")


def dockerfile_has_healthcheck(path: Path) -> bool:
    return path.is_file() and re.search(r"(?m)^\s*HEALTHCHECK\s+(?!NONE)", path.read_text()) is not None


def check(model: dict, repo: Path) -> list[str]:
    problems: list[str] = []
    services: dict = model.get("services") or {}
    for name in REQUIRED:
        if name not in services:
            problems.append(f"service {name} is missing")
    agents = sorted(n for n, s in services.items() if n.startswith("agent-"))
    if len(agents) < 3:
        problems.append(f"expected at least 3 agents, found {agents}")

    for name, svc in sorted(services.items()):
        where = f"service {name}"
        if svc.get("read_only") is not True:
            problems.append(f"{where}: read_only is not true")
        if "ALL" not in (svc.get("cap_drop") or []):
            problems.append(f"{where}: cap_drop does not contain ALL")
        if not any(str(o).replace("=", ":") in {"no-new-privileges:true", "no-new-privileges"}
                   for o in svc.get("security_opt") or []):
            problems.append(f"{where}: security_opt lacks no-new-privileges:true")
        build = svc.get("build")
        image = svc.get("image", "")
        if build:
            user = str(svc.get("user", ""))
            if not user or user.split(":")[0] in {"0", "root"}:
                problems.append(f"{where}: built here but runs without a non-root `user`")
            ctx = Path(build.get("context", ""))
            dockerfile = ctx / build.get("dockerfile", "Dockerfile")
            if not ctx.is_dir():
                problems.append(f"{where}: build context {ctx} does not exist")
            if not dockerfile.is_file():
                problems.append(f"{where}: Dockerfile {dockerfile} does not exist")
        elif not image_pinned(image):
            problems.append(f"{where}: image {image!r} is not pinned to a tag")
        for p in svc.get("ports") or []:
            if p.get("host_ip") != "127.0.0.1":
                problems.append(f"{where}: port {p.get('published')}->{p.get('target')} is not bound to 127.0.0.1")
        hc = svc.get("healthcheck")
        if hc and hc.get("disable"):
            if svc.get("network_mode") != "none":
                problems.append(f"{where}: health check disabled on a service with a network")
        elif not hc:
            df = None
            if build:
                df = Path(build.get("context", "")) / build.get("dockerfile", "Dockerfile")
            if df is None or not dockerfile_has_healthcheck(df):
                problems.append(f"{where}: no health check (compose or Dockerfile HEALTHCHECK)")
        for v in svc.get("volumes") or []:
            if v.get("type") == "bind" and not Path(v.get("source", "")).exists():
                problems.append(f"{where}: bind mount source {v.get('source')} does not exist")
        for dep, cond in (svc.get("depends_on") or {}).items():
            if dep not in services:
                problems.append(f"{where}: depends on unknown service {dep}")
            elif cond.get("condition") == "service_healthy":
                dsvc = services[dep]
                dhc = dsvc.get("healthcheck")
                dbuild = dsvc.get("build")
                has = (dhc and not dhc.get("disable")) or (
                    not dhc and dbuild and dockerfile_has_healthcheck(
                        Path(dbuild.get("context", "")) / dbuild.get("dockerfile", "Dockerfile")))
                if not has:
                    problems.append(f"{where}: waits for {dep} to be healthy, but {dep} has no health check")

    digests = services.get("digests")
    if digests:
        cmd = digests.get("command") or []
        if cmd[:1] != ["publish-digests"] or "--watch" not in cmd:
            problems.append("service digests: command is not `publish-digests DIR --watch`")
        else:
            hls_dir = next((c for c in cmd[1:] if not c.startswith("-")), None)
            mounts = {v.get("target"): v for v in digests.get("volumes") or []}
            m = mounts.get(hls_dir)
            if not m or m.get("read_only"):
                problems.append(f"service digests: {hls_dir} is not a writable volume mount")
            origin = services.get("origin") or {}
            origin_src = {v.get("source") for v in origin.get("volumes") or []}
            if m and m.get("source") not in origin_src:
                problems.append("service digests: writes to a volume the origin does not serve")

    targets_dir = repo / "deploy" / "container" / "prometheus-targets"
    expected_ports = {"agents.yml": 9585, "trackers.yml": 9586}
    for fname, port in expected_ports.items():
        f = targets_dir / fname
        if not f.is_file():
            problems.append(f"prometheus-targets/{fname} is missing")
            continue
        for group in yaml.safe_load(f.read_text()) or []:
            for t in group.get("targets", []):
                host, _, p = t.rpartition(":")
                if host not in services:
                    problems.append(f"prometheus-targets/{fname}: {t} is not a compose service")
                if p != str(port):
                    problems.append(f"prometheus-targets/{fname}: {t} should use the admin port {port}")
    listed = set()
    f = targets_dir / "agents.yml"
    if f.is_file():
        for group in yaml.safe_load(f.read_text()) or []:
            listed |= {t.rpartition(":")[0] for t in group.get("targets", [])}
        missing = set(agents) - listed
        if missing:
            problems.append(f"prometheus-targets/agents.yml does not scrape {sorted(missing)}")
    return problems


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repo", type=Path, default=Path(__file__).resolve().parents[2])
    ap.add_argument("config", nargs="?", help="JSON from `docker-compose config --format json` (stdin if absent)")
    args = ap.parse_args(argv)
    text = Path(args.config).read_text() if args.config else sys.stdin.read()
    try:
        model = json.loads(text)
    except json.JSONDecodeError as e:
        print(f"not a compose JSON model: {e}")
        return 1
    problems = check(model, args.repo)
    for p in problems:
        print(p)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
