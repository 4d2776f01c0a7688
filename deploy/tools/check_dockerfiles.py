#!/usr/bin/env python3
"""Structure checks for the hivecast Dockerfiles (beyond hadolint's lint rules).

For each image we ship (agent, tracker):
* multi-stage: a `rust:*-slim-*` builder stage and a `debian:*-slim` runtime stage;
* the builder runs `cargo build --release --locked -p <crate>`;
* the final stage copies the binary from the builder, runs as a numeric non-root USER, has a
  HEALTHCHECK, EXPOSEs the player/WebSocket and admin ports, an exec-form ENTRYPOINT and a
  STOPSIGNAL of SIGTERM;
* its ENV points the listeners at 0.0.0.0 (reachable through published ports);
* every COPY source (not --from) exists in the build context.
For the demo packager: non-root USER and HEALTHCHECK.

Usage: check_dockerfiles.py [--repo DIR]   (exit 1 with one line per problem)
"""

from __future__ import annotations

import argparse
import json
import re
import shlex
import sys
from pathlib import Path

from dockerfile_parse import DockerfileParser

IMAGES = {
    # file: (context relative to repo, crate, expected exposed ports, listener env variables)
    "agent.Dockerfile": (".", "hivecast-agent", {"8585/tcp", "9585/tcp"},
                         ["HIVECAST_AGENT__SERVER__LISTEN", "HIVECAST_AGENT__SERVER__ADMIN_LISTEN"]),
    "tracker.Dockerfile": (".", "hivecast-tracker", {"8000/tcp", "9586/tcp"},
                           ["HIVECAST_TRACKER__SERVER__LISTEN", "HIVECAST_TRACKER__ADMIN__LISTEN"]),
}
PACKAGER = ("packager.Dockerfile", "deploy/container")


def stages(instructions: list[dict]) -> list[list[dict]]:
    out: list[list[dict]] = []
    for ins in instructions:
        if ins["instruction"] == "FROM":
            out.append([ins])
        elif out:
            out[-1].append(ins)
    return out


def resolve_args(text: str, args: dict[str, str]) -> str:
    return re.sub(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?", lambda m: args.get(m.group(1), m.group(0)), text)


def global_args(instructions: list[dict]) -> dict[str, str]:
    args: dict[str, str] = {}
    for ins in instructions:
        if ins["instruction"] == "FROM":
            break
        if ins["instruction"] == "ARG" and "=" in ins["value"]:
            k, v = ins["value"].split("=", 1)
            args[k.strip()] = v.strip().strip('"')
    return args


def copy_sources(value: str) -> tuple[list[str], bool]:
    """(sources, has --from) of a COPY instruction value."""
    if value.lstrip().startswith("["):
        parts = json.loads(value)
    else:
        parts = shlex.split(value)
    flags = [p for p in parts if p.startswith("--")]
    rest = [p for p in parts if not p.startswith("--")]
    return rest[:-1], any(f.startswith("--from") for f in flags)


def user_is_non_root(value: str) -> bool:
    user = value.split(":", 1)[0].strip()
    return user not in {"", "0", "root"} and (not user.isdigit() or int(user) >= 1000)


def check_final_stage(name: str, final: list[dict], problems: list[str], ports: set[str] | None) -> None:
    kinds = [i["instruction"] for i in final]
    users = [i["value"] for i in final if i["instruction"] == "USER"]
    if not users:
        problems.append(f"{name}: final stage has no USER")
    elif not user_is_non_root(users[-1]):
        problems.append(f"{name}: final USER {users[-1]!r} is root or a system UID")
    elif not users[-1].split(":")[0].isdigit():
        problems.append(f"{name}: final USER {users[-1]!r} should be numeric (runAsNonRoot needs a UID)")
    if "HEALTHCHECK" not in kinds:
        problems.append(f"{name}: final stage has no HEALTHCHECK")
    else:
        hc = [i["value"] for i in final if i["instruction"] == "HEALTHCHECK"][-1]
        if "NONE" in hc.split():
            problems.append(f"{name}: HEALTHCHECK NONE")
    entry = [i["value"] for i in final if i["instruction"] == "ENTRYPOINT"]
    if not entry or not entry[-1].lstrip().startswith("["):
        problems.append(f"{name}: ENTRYPOINT must be in exec form (signals reach the process)")
    if ports is not None:
        exposed: set[str] = set()
        for i in final:
            if i["instruction"] == "EXPOSE":
                for p in i["value"].split():
                    exposed.add(p if "/" in p else f"{p}/tcp")
        if exposed != ports:
            problems.append(f"{name}: EXPOSE {sorted(exposed)} != expected {sorted(ports)}")
        sig = [i["value"] for i in final if i["instruction"] == "STOPSIGNAL"]
        if sig != ["SIGTERM"]:
            problems.append(f"{name}: STOPSIGNAL should be SIGTERM (graceful drain)")


def check_copies(name: str, instructions: list[dict], context: Path, problems: list[str]) -> None:
    for ins in instructions:
        if ins["instruction"] == "ADD":
            problems.append(f"{name}:{ins['startline'] + 1}: use COPY, not ADD")
        if ins["instruction"] != "COPY":
            continue
        srcs, from_stage = copy_sources(ins["value"])
        if from_stage:
            continue
        for s in srcs:
            if s in {".", "./"}:
                continue
            if not (context / s).exists():
                problems.append(f"{name}:{ins['startline'] + 1}: COPY source {s} not found in context {context}")


def check_image(deploy: Path, repo: Path, fname: str, spec, problems: list[str]) -> None:
    ctx_rel, crate, ports, listen_vars = spec
    path = deploy / "container" / fname
    if not path.is_file():
        problems.append(f"{fname}: missing")
        return
    parser = DockerfileParser(path=str(path))
    ins = parser.structure
    args = global_args(ins)
    st = stages(ins)
    if len(st) < 2:
        problems.append(f"{fname}: not multi-stage ({len(st)} stage)")
        return
    builder_from = resolve_args(st[0][0]["value"], args)
    final_from = resolve_args(st[-1][0]["value"], args)
    if not re.match(r"^rust:[0-9.]+-slim-[a-z]+\s+AS\s+\w+", builder_from, re.I):
        problems.append(f"{fname}: builder stage is {builder_from!r}, expected rust:<version>-slim-<release> AS <name>")
    if not re.match(r"^debian:[a-z]+-slim(\s|$)", final_from):
        problems.append(f"{fname}: runtime stage is {final_from!r}, expected debian:<release>-slim")
    if builder_from.split(":")[1].split("-")[-1].split()[0] != final_from.split(":")[1].split("-")[0]:
        problems.append(f"{fname}: builder and runtime use different Debian releases (glibc mismatch)")
    builder_runs = " ".join(i["value"] for i in st[0] if i["instruction"] == "RUN")
    if not re.search(rf"cargo build --release --locked -p {re.escape(crate)}\b", builder_runs):
        problems.append(f"{fname}: builder does not run `cargo build --release --locked -p {crate}`")
    final = st[-1]
    if not any(i["instruction"] == "COPY" and "--from=" in i["value"] and crate in i["value"] for i in final):
        problems.append(f"{fname}: final stage does not COPY --from the builder's {crate} binary")
    check_final_stage(fname, final, problems, ports)
    env_text = " ".join(i["value"] for i in final if i["instruction"] == "ENV")
    for var in listen_vars:
        if not re.search(rf"{var}=0\.0\.0\.0:\d+", env_text):
            problems.append(f"{fname}: ENV {var}=0.0.0.0:PORT missing (container listens on loopback)")
    check_copies(fname, ins, repo / ctx_rel, problems)
    ignore = deploy / "container" / f"{fname}.dockerignore"
    if not ignore.is_file():
        problems.append(f"{fname}: no {ignore.name} (the whole repository, target/ included, would be sent)")
    else:
        lines = ignore.read_text().splitlines()
        if "**/target/" not in lines and "target" not in lines and "/target" not in lines:
            problems.append(f"{ignore.name}: does not exclude target/")


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repo", type=Path, default=Path(__file__).resolve().parents[2])
    args = ap.parse_args(argv)
    repo = args.repo
    deploy = repo / "deploy"
    problems: list[str] = []
    for fname, spec in IMAGES.items():
        check_image(deploy, repo, fname, spec, problems)
    pf, pctx = PACKAGER
    ppath = deploy / "container" / pf
    if ppath.is_file():
        ins = DockerfileParser(path=str(ppath)).structure
        check_final_stage(pf, stages(ins)[-1], problems, None)
        check_copies(pf, ins, repo / pctx, problems)
    else:
        problems.append(f"{pf}: missing")
    for p in problems:
        print(p)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
