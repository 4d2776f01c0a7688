#!/usr/bin/env python3
"""Checks that deploy/ only uses configuration the binaries accept (stdlib only).

The agent and tracker reject unknown keys (exit 64), so a misspelt environment variable in
a Dockerfile or manifest is an outage at rollout. This checks, against the documented
defaults:

* every `HIVECAST_AGENT__SECTION__KEY` / `HIVECAST_TRACKER__SECTION__KEY` variable named in
  deploy/ (Dockerfiles, compose, Kubernetes, systemd) is a `section.key` of that program;
* every TOML document shipped in deploy/ (the agent ConfigMap's agent.toml) only uses known
  sections and keys, with values of the same TOML type as the default where one is set;
* every long flag passed to `hivecast-agent` / `hivecast-tracker` in deploy/ is declared in
  the program's clap definitions (<program>/src/main.rs) or is part of the command-line
  contract of DESIGN.md; contract flags not declared yet are reported as notes.

Source of the known keys, first found: config/<program>.toml (the documented defaults,
checked in CI against --print-default-config); for the tracker, tracker/src/config/default.toml;
for the agent, the key table (DOCS) in agent/src/config/load.rs.

Usage: check_config_keys.py [--repo DIR]   (exit 1 with one line per problem)
"""

from __future__ import annotations

import argparse
import re
import sys
import tomllib
from pathlib import Path

ENV = re.compile(r"\bHIVECAST_(AGENT|TRACKER)__([A-Z0-9_]+?)__([A-Z0-9_]+)\b")
# Command-line contract (DESIGN.md and the issue): long options per program.
FLAGS = {
    "agent": {"--config", "--listen", "--admin-listen", "--allow-origin", "--tracker", "--stream",
              "--watch", "--interval", "--print-default-config"},
    "tracker": {"--config", "--listen", "--print-default-config"},
}
SCANNED_SUFFIXES = {".yaml", ".yml", ".service", ".Dockerfile", ".sh", ".conf", ".env"}


class Schema:
    """Known sections/keys of one program, with default values where known."""

    def __init__(self, source: Path) -> None:
        self.source = source
        self.tables: dict[str, dict[str, object]] = {}
        self.arrays: dict[str, dict[str, object]] = {}

    def has(self, section: str, key: str) -> bool:
        return key in self.tables.get(section, {}) or key in self.arrays.get(section, {})


def _commented_keys(text: str) -> dict[str, set[str]]:
    """Keys documented as comments (`# tls_cert_file = …`) per section: valid, unset by default."""
    out: dict[str, set[str]] = {}
    section = None
    for line in text.splitlines():
        m = re.match(r"^\s*\[\[?([a-z_]+)\]?\]\s*$", line) or re.match(r"^\s*#\s*\[\[([a-z_]+)\]\]\s*$", line)
        if m:
            section = m.group(1)
            continue
        m = re.match(r"^\s*#\s*([a-z_]+)\s*=", line)
        if m and section:
            out.setdefault(section, set()).add(m.group(1))
    return out


def schema_from_toml(path: Path) -> Schema:
    text = path.read_text()
    doc = tomllib.loads(text)
    s = Schema(path)
    for section, value in doc.items():
        if isinstance(value, dict):
            s.tables[section] = dict(value)
        elif isinstance(value, list) and all(isinstance(v, dict) for v in value):
            s.arrays[section] = {k: v for item in value for k, v in item.items()}
    commented_arrays = set(re.findall(r"(?m)^\s*#\s*\[\[([a-z_]+)\]\]\s*$", text))
    for section, keys in _commented_keys(text).items():
        target = s.arrays if section in s.arrays or section in commented_arrays else s.tables
        for k in keys:
            target.setdefault(section, {}).setdefault(k, None)
    return s


def schema_from_agent_docs(path: Path) -> Schema:
    s = Schema(path)
    text = path.read_text()
    for sec, key in re.findall(r'\(\s*"([a-z_]+)\.([a-z_]+)"\s*,', text):
        s.tables.setdefault(sec, {})[key] = None
    m = re.search(r'\(\s*"streams"\s*,\s*"((?:[^"\\]|\\.)*)"', text)
    if m:
        example = m.group(1).replace("\\n", "\n")
        s.arrays["streams"] = {k: None for k in re.findall(r"(?m)^([a-z_]+)\s*=", example)}
    return s


def load_schema(repo: Path, program: str) -> Schema | None:
    """The key reference of `program`, or None when none is checked in."""
    for candidate in (repo / "config" / f"{program}.toml", repo / program / "src" / "config" / "default.toml"):
        if candidate.is_file():
            return schema_from_toml(candidate)
    if program == "agent":
        docs = repo / "agent" / "src" / "config" / "load.rs"
        if docs.is_file():
            return schema_from_agent_docs(docs)
    return None


def deploy_files(deploy: Path) -> list[Path]:
    out = []
    for f in sorted(deploy.rglob("*")):
        if not f.is_file() or "tools" in f.relative_to(deploy).parts:
            continue
        if f.suffix in SCANNED_SUFFIXES or f.name.endswith(".Dockerfile"):
            out.append(f)
    return out


def check_env(files: list[Path], schemas: dict[str, Schema | None], deploy: Path, problems: list[str]) -> int:
    seen = 0
    for f in files:
        for lineno, line in enumerate(f.read_text().splitlines(), 1):
            for prog, sec, key in ENV.findall(line):
                if (sec, key) == ("SECTION", "KEY"):
                    continue  # the documented placeholder
                seen += 1
                program = prog.lower()
                schema = schemas.get(program)
                if schema is None:
                    continue
                section, k = sec.lower(), key.lower()
                if not schema.has(section, k):
                    problems.append(f"{f.relative_to(deploy.parent)}:{lineno}: HIVECAST_{prog}__{sec}__{key} "
                                    f"is not a key of {program} ({section}.{k} unknown in {schema.source.name})")
    return seen


def _same_type(default: object, value: object) -> bool:
    if default is None:
        return True
    if isinstance(default, bool) or isinstance(value, bool):
        return isinstance(default, bool) and isinstance(value, bool)
    if isinstance(default, (int, float)) and isinstance(value, (int, float)):
        return True
    return type(default) is type(value)


def check_toml_doc(where: str, text: str, schema: Schema, problems: list[str]) -> None:
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        problems.append(f"{where}: invalid TOML: {e}")
        return
    for section, value in doc.items():
        if isinstance(value, dict):
            known = schema.tables.get(section)
            items = [value]
        elif isinstance(value, list) and all(isinstance(v, dict) for v in value):
            known = schema.arrays.get(section)
            items = value
        else:
            problems.append(f"{where}: top-level key `{section}` is not a section")
            continue
        if known is None:
            problems.append(f"{where}: unknown section [{section}]")
            continue
        for item in items:
            for k, v in item.items():
                if k not in known:
                    problems.append(f"{where}: unknown key {section}.{k}")
                elif not _same_type(known[k], v):
                    problems.append(f"{where}: {section}.{k} = {v!r} has another type than the default {known[k]!r}")


def embedded_tomls(deploy: Path) -> list[tuple[str, str, str]]:
    """(where, program, text) of TOML documents embedded in Kubernetes ConfigMaps."""
    import yaml

    out = []
    for f in sorted((deploy / "kubernetes").glob("*.yaml")):
        for d in yaml.safe_load_all(f.read_text()):
            if not d or d.get("kind") != "ConfigMap":
                continue
            for key, text in (d.get("data") or {}).items():
                if key.endswith(".toml"):
                    program = "tracker" if "tracker" in key else "agent"
                    out.append((f"{f.relative_to(deploy.parent)} ConfigMap/{d['metadata']['name']} {key}", program, text))
    return out


def cli_flags(repo: Path, program: str) -> set[str] | None:
    """Long options declared with clap in <program>/src/main.rs, or None without that file.

    `#[arg(long)]` on a field `foo_bar` gives `--foo-bar`; `#[arg(long = "x")]` gives `--x`."""
    main_rs = repo / program / "src" / "main.rs"
    if not main_rs.is_file():
        return None
    text = main_rs.read_text()
    flags: set[str] = set()
    for m in re.finditer(r'#\[arg\(([^\]]*)\)\]\s*(?:///[^\n]*\n\s*|#\[[^\]]*\]\s*)*([a-z_][a-z0-9_]*)\s*:', text):
        attrs, field = m.group(1), m.group(2)
        named = re.search(r'\blong\s*=\s*"([^"]+)"', attrs)
        if named:
            flags.add("--" + named.group(1))
        elif re.search(r"\blong\b", attrs):
            flags.add("--" + field.replace("_", "-"))
    return flags


def agent_args_flags(deploy: Path, problems: list[str], notes: list[str]) -> None:
    """Flags in compose, Kubernetes and systemd command lines of the agent and tracker."""
    import yaml

    declared = {p: cli_flags(deploy.parent, p) for p in ("agent", "tracker")}

    def check_list(where: str, program: str, args: list) -> None:
        for a in args:
            a = str(a)
            if not a.startswith("--"):
                continue
            flag = a.split("=", 1)[0]
            in_cli = declared[program] is not None and flag in declared[program]
            if flag not in FLAGS[program] and not in_cli:
                problems.append(f"{where}: {flag} is not a hivecast-{program} option")
            elif declared[program] is not None and not in_cli:
                notes.append(f"{where}: {flag} is in the command-line contract but not (yet) "
                             f"declared in {program}/src/main.rs")

    compose = deploy / "container" / "compose.yaml"
    if compose.is_file():
        doc = yaml.safe_load(compose.read_text())
        anchors = {k: v for k, v in doc.items() if k.startswith("x-")}
        for name, svc in list((doc.get("services") or {}).items()) + list(anchors.items()):
            image = str(svc.get("image", ""))
            for program in ("agent", "tracker"):
                if f"hivecast-{program}" in image and isinstance(svc.get("command"), list):
                    check_list(f"compose {name}", program, svc["command"])
    for f in sorted((deploy / "kubernetes").glob("*.yaml")):
        for d in yaml.safe_load_all(f.read_text()):
            if not d or d.get("kind") not in {"Deployment", "DaemonSet", "StatefulSet"}:
                continue
            for c in d["spec"]["template"]["spec"]["containers"]:
                for program in ("agent", "tracker"):
                    if f"hivecast-{program}" in c.get("image", ""):
                        check_list(f"{f.name} {d['kind']}/{d['metadata']['name']}", program,
                                   c.get("command", []) + c.get("args", []))
    for f in sorted((deploy / "systemd").glob("*.service")):
        for line in f.read_text().splitlines():
            m = re.match(r"^ExecStart=\S*hivecast-(agent|tracker)\s+(.*)$", line)
            if m:
                check_list(f.name, m.group(1), m.group(2).split())


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repo", type=Path, default=Path(__file__).resolve().parents[2])
    args = ap.parse_args(argv)
    repo = args.repo
    deploy = repo / "deploy"
    problems: list[str] = []
    schemas = {p: load_schema(repo, p) for p in ("agent", "tracker")}
    for p, s in schemas.items():
        if s is None:
            print(f"note: no configuration reference for {p} found; its keys are not checked")
        else:
            print(f"note: {p} keys from {s.source.relative_to(repo)}")
    files = deploy_files(deploy)
    n = check_env(files, schemas, deploy, problems)
    for where, program, text in embedded_tomls(deploy):
        if schemas.get(program) is not None:
            check_toml_doc(where, text, schemas[program], problems)
    notes: list[str] = []
    agent_args_flags(deploy, problems, notes)
    print(f"note: {n} environment variable uses checked")
    for note in sorted(set(notes)):
        print(f"note: {note}")
    for p in problems:
        print(p)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
