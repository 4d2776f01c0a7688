#!/usr/bin/env python3
"""Policy and consistency checks for deploy/kubernetes (beyond schema validation).

Schema validation (kubernetes-validate) proves each object is well-formed; this proves the
set is coherent and hardened:

* kustomization.yaml lists every manifest in the folder (and nothing missing);
* workloads (Deployment, DaemonSet, StatefulSet): no service-account token, pod and container
  securityContext per the `restricted` profile plus readOnlyRootFilesystem and drop ALL,
  readiness + liveness probes on declared container ports, CPU/memory requests and a memory
  limit with valid quantities (request ≤ limit), a pinned image tag, and a termination grace
  period longer than preStop + the program's shutdown grace;
* Services, PodDisruptionBudgets and NetworkPolicies select existing pods, and their named
  ports exist on those pods;
* the tracker Deployment has a PodDisruptionBudget; the agent runs as a DaemonSet with its
  ConfigMap mounted, and the ConfigMap's agent.toml is valid TOML;
* PodMonitors in monitoring/ set the job names the rules expect.

Usage: check_k8s.py [--dir DIR]   (exit 1 with one line per problem)
"""

from __future__ import annotations

import argparse
import re
import sys
import tomllib
from pathlib import Path

import yaml

WORKLOADS = {"Deployment", "DaemonSet", "StatefulSet"}
_QTY = re.compile(r"^([0-9]+(\.[0-9]+)?)(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$")
_SUFFIX = {None: 1, "m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15, "E": 1e18,
           "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
DEFAULT_SHUTDOWN_GRACE = 10
JOB_NAMES = {"hivecast-agent", "hivecast-tracker"}


def quantity(value) -> float | None:
    m = _QTY.match(str(value))
    if not m:
        return None
    return float(m.group(1)) * _SUFFIX[m.group(3)]


def load_docs(folder: Path) -> list[tuple[Path, dict]]:
    docs = []
    for f in sorted(folder.glob("*.yaml")):
        for d in yaml.safe_load_all(f.read_text()):
            if d:
                docs.append((f, d))
    return docs


def selects(selector: dict, labels: dict) -> bool:
    ml = (selector or {}).get("matchLabels") or {}
    return all(labels.get(k) == v for k, v in ml.items()) and bool(ml)


def pod_ports(template: dict) -> dict[str, int]:
    ports = {}
    for c in template["spec"].get("containers", []):
        for p in c.get("ports", []):
            if "name" in p:
                ports[p["name"]] = p["containerPort"]
    return ports


def prestop_seconds(container: dict) -> int:
    cmd = (((container.get("lifecycle") or {}).get("preStop") or {}).get("exec") or {}).get("command") or []
    for tok in cmd:
        if re.fullmatch(r"\d+", str(tok)):
            return int(tok)
    sleep = (((container.get("lifecycle") or {}).get("preStop") or {}).get("sleep") or {}).get("seconds")
    return int(sleep or 0)


def check_workload(name: str, obj: dict, problems: list[str]) -> None:
    tpl = obj["spec"]["template"]
    spec = tpl["spec"]
    where = f"{obj['kind']}/{name}"
    if spec.get("automountServiceAccountToken") is not False:
        problems.append(f"{where}: automountServiceAccountToken is not false")
    psc = spec.get("securityContext") or {}
    if psc.get("runAsNonRoot") is not True:
        problems.append(f"{where}: pod securityContext.runAsNonRoot is not true")
    if (psc.get("seccompProfile") or {}).get("type") != "RuntimeDefault":
        problems.append(f"{where}: pod seccompProfile is not RuntimeDefault")
    if spec.get("hostNetwork") or spec.get("hostPID") or spec.get("hostIPC"):
        problems.append(f"{where}: uses host namespaces")
    if not selects(obj["spec"].get("selector"), tpl["metadata"].get("labels") or {}):
        problems.append(f"{where}: selector does not match the pod template labels")
    ports = pod_ports(tpl)
    grace = spec.get("terminationGracePeriodSeconds", 30)
    for c in spec.get("containers", []):
        cw = f"{where} container {c['name']}"
        sc = c.get("securityContext") or {}
        if sc.get("allowPrivilegeEscalation") is not False:
            problems.append(f"{cw}: allowPrivilegeEscalation is not false")
        if sc.get("readOnlyRootFilesystem") is not True:
            problems.append(f"{cw}: readOnlyRootFilesystem is not true")
        if "ALL" not in ((sc.get("capabilities") or {}).get("drop") or []):
            problems.append(f"{cw}: capabilities.drop lacks ALL")
        if (sc.get("capabilities") or {}).get("add"):
            problems.append(f"{cw}: adds capabilities")
        if sc.get("privileged"):
            problems.append(f"{cw}: privileged")
        image = c.get("image", "")
        tag = image.rsplit("/", 1)[-1]
        if "@sha256:" not in image and (":" not in tag or tag.endswith(":latest")):
            problems.append(f"{cw}: image {image!r} has no pinned tag")
        for probe in ("readinessProbe", "livenessProbe"):
            p = c.get(probe)
            if not p:
                problems.append(f"{cw}: no {probe}")
                continue
            port = (p.get("httpGet") or p.get("tcpSocket") or {}).get("port")
            if isinstance(port, str) and port not in ports:
                problems.append(f"{cw}: {probe} uses undeclared port {port!r}")
        res = c.get("resources") or {}
        req, lim = res.get("requests") or {}, res.get("limits") or {}
        for kind in ("cpu", "memory"):
            if kind not in req:
                problems.append(f"{cw}: no {kind} request")
        if "memory" not in lim:
            problems.append(f"{cw}: no memory limit")
        for section, values in (("requests", req), ("limits", lim)):
            for k, v in values.items():
                if quantity(v) is None:
                    problems.append(f"{cw}: {section}.{k} {v!r} is not a valid quantity")
        for k in ("cpu", "memory"):
            if k in req and k in lim and None not in (quantity(req[k]), quantity(lim[k])):
                if quantity(req[k]) > quantity(lim[k]):
                    problems.append(f"{cw}: {k} request {req[k]} above limit {lim[k]}")
        needed = prestop_seconds(c) + DEFAULT_SHUTDOWN_GRACE + 5
        if grace < needed:
            problems.append(f"{where}: terminationGracePeriodSeconds {grace} < preStop + shutdown grace + 5s ({needed})")


def check(folder: Path) -> list[str]:
    problems: list[str] = []
    kustom = folder / "kustomization.yaml"
    manifest_files = sorted(f.name for f in folder.glob("*.yaml") if f.name != "kustomization.yaml")
    if not kustom.is_file():
        problems.append("kustomization.yaml is missing")
    else:
        listed = yaml.safe_load(kustom.read_text()).get("resources") or []
        for r in listed:
            if not (folder / r).is_file():
                problems.append(f"kustomization.yaml lists {r}, which does not exist")
        for f in manifest_files:
            if f not in listed:
                problems.append(f"{f} is not listed in kustomization.yaml")

    docs = [(f, d) for f, d in load_docs(folder) if f.name != "kustomization.yaml"]
    objs = [d for _, d in docs]
    for f, d in docs:
        for k in ("apiVersion", "kind", "metadata"):
            if k not in d:
                problems.append(f"{f.name}: object without {k}")
        if d.get("kind") != "Namespace" and (d.get("metadata") or {}).get("namespace") != "hivecast":
            problems.append(f"{f.name}: {d.get('kind')}/{d['metadata'].get('name')} is not in namespace hivecast")

    workloads = [o for o in objs if o.get("kind") in WORKLOADS]
    for w in workloads:
        check_workload(w["metadata"]["name"], w, problems)
    pods = [(w, w["spec"]["template"]["metadata"].get("labels") or {}) for w in workloads]

    def matching(selector_labels: dict) -> list[dict]:
        return [w for w, labels in pods if selector_labels and all(labels.get(k) == v for k, v in selector_labels.items())]

    for o in objs:
        kind, name = o.get("kind"), o["metadata"]["name"]
        if kind == "Service":
            targets = matching(o["spec"].get("selector") or {})
            if not targets:
                problems.append(f"Service/{name}: selects no workload")
            for p in o["spec"].get("ports", []):
                tp = p.get("targetPort")
                if isinstance(tp, str) and not any(tp in pod_ports(w["spec"]["template"]) for w in targets):
                    problems.append(f"Service/{name}: targetPort {tp!r} is not a port of the selected pods")
        elif kind == "PodDisruptionBudget":
            if not matching((o["spec"].get("selector") or {}).get("matchLabels") or {}):
                problems.append(f"PodDisruptionBudget/{name}: selects no workload")
        elif kind == "NetworkPolicy":
            sel = (o["spec"].get("podSelector") or {}).get("matchLabels") or {}
            targets = matching(sel) if sel else [w for w, _ in pods]
            if sel and not targets:
                problems.append(f"NetworkPolicy/{name}: selects no workload")
            for rule in o["spec"].get("ingress", []) or []:
                for p in rule.get("ports", []) or []:
                    port = p.get("port")
                    if isinstance(port, str) and not all(port in pod_ports(w["spec"]["template"]) for w in targets):
                        problems.append(f"NetworkPolicy/{name}: ingress port {port!r} is not a port of the selected pods")

    tracker = [w for w in workloads if w["kind"] == "Deployment" and "tracker" in w["metadata"]["name"]]
    if not tracker:
        problems.append("no tracker Deployment")
    else:
        labels = tracker[0]["spec"]["template"]["metadata"]["labels"]
        if not any(o.get("kind") == "PodDisruptionBudget" and
                   selects(o["spec"].get("selector"), labels) for o in objs):
            problems.append("the tracker Deployment has no PodDisruptionBudget")
    agents = [w for w in workloads if w["kind"] == "DaemonSet" and "agent" in w["metadata"]["name"]]
    if not agents:
        problems.append("no agent DaemonSet")
    cms = {o["metadata"]["name"]: o for o in objs if o.get("kind") == "ConfigMap"}
    for a in agents:
        vols = a["spec"]["template"]["spec"].get("volumes", [])
        cm_names = [v["configMap"]["name"] for v in vols if "configMap" in v]
        if not cm_names:
            problems.append(f"DaemonSet/{a['metadata']['name']}: no ConfigMap volume")
        for n in cm_names:
            if n not in cms:
                problems.append(f"DaemonSet/{a['metadata']['name']}: ConfigMap {n} is not defined")
                continue
            for key, text in (cms[n].get("data") or {}).items():
                if key.endswith(".toml"):
                    try:
                        tomllib.loads(text)
                    except tomllib.TOMLDecodeError as e:
                        problems.append(f"ConfigMap/{n} {key}: invalid TOML: {e}")

    mon = folder / "monitoring"
    if mon.is_dir():
        for f, d in load_docs(mon):
            if d.get("kind") not in {"PodMonitor", "ServiceMonitor"}:
                continue
            eps = d["spec"].get("podMetricsEndpoints") or d["spec"].get("endpoints") or []
            jobs = {r.get("replacement") for e in eps for r in e.get("relabelings", []) if r.get("targetLabel") == "job"}
            if not jobs & JOB_NAMES:
                problems.append(f"monitoring/{f.name}: {d['metadata']['name']} does not set job to one of {sorted(JOB_NAMES)}")
            labels = d["spec"]["selector"].get("matchLabels") or {}
            if not matching(labels):
                problems.append(f"monitoring/{f.name}: {d['metadata']['name']} selects no workload")
            for e in eps:
                if not any(e.get("port") in pod_ports(w["spec"]["template"]) for w in matching(labels)):
                    problems.append(f"monitoring/{f.name}: port {e.get('port')!r} is not a port of the selected pods")
    return problems


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dir", type=Path, default=Path(__file__).resolve().parents[1] / "kubernetes")
    args = ap.parse_args(argv)
    problems = check(args.dir)
    for p in problems:
        print(p)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
