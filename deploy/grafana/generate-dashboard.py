#!/usr/bin/env python3
"""Generates deploy/grafana/dashboards/hivecast-overview.json (stdlib only).

The dashboard is code: edit this file, run it, commit both. `deploy/check.sh` fails when the
JSON differs from what this script generates.

Queries use only the metric names of the DESIGN.md contract (and the tracker/agent names
documented in docs/metrics.md), raw rather than recording rules, so the dashboard works on a
Prometheus without the hivecast rules loaded. Agent panels follow the `$instance` selection.

Usage: generate-dashboard.py [--check]   (--check: exit 1 if the committed JSON is stale)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

OUT = Path(__file__).resolve().parent / "dashboards" / "hivecast-overview.json"
DS = {"type": "prometheus", "uid": "${datasource}"}
AGENT = 'instance=~"$instance"'
RI = "$__rate_interval"


class Layout:
    """Places panels left to right on Grafana's 24-column grid and hands out ids."""

    def __init__(self) -> None:
        self.panels: list[dict] = []
        self.x = 0
        self.y = 0
        self.row_h = 0
        self.next_id = 1

    def _id(self) -> int:
        i = self.next_id
        self.next_id += 1
        return i

    def row(self, title: str) -> None:
        self.newline()
        self.panels.append(
            {
                "type": "row",
                "id": self._id(),
                "title": title,
                "collapsed": False,
                "gridPos": {"x": 0, "y": self.y, "w": 24, "h": 1},
                "panels": [],
            }
        )
        self.y += 1

    def newline(self) -> None:
        if self.x:
            self.y += self.row_h
            self.x = 0
            self.row_h = 0

    def add(self, panel: dict, w: int, h: int) -> None:
        if self.x + w > 24:
            self.newline()
        panel["id"] = self._id()
        panel["gridPos"] = {"x": self.x, "y": self.y, "w": w, "h": h}
        self.panels.append(panel)
        self.x += w
        self.row_h = max(self.row_h, h)


def target(expr: str, legend: str = "", ref: str = "A", instant: bool = False) -> dict:
    t = {"datasource": DS, "expr": expr, "legendFormat": legend or "__auto", "refId": ref}
    if instant:
        t["instant"] = True
        t["range"] = False
    else:
        t["range"] = True
    return t


def refs(targets: list[tuple[str, str]], instant: bool = False) -> list[dict]:
    return [target(e, l, chr(ord("A") + i), instant) for i, (e, l) in enumerate(targets)]


def stat(title: str, desc: str, targets, unit: str, thresholds=None, decimals=None) -> dict:
    steps = thresholds or [{"color": "green", "value": None}]
    p = {
        "type": "stat",
        "title": title,
        "description": desc,
        "datasource": DS,
        "targets": refs(targets, instant=True),
        "fieldConfig": {
            "defaults": {
                "unit": unit,
                "color": {"mode": "thresholds"},
                "thresholds": {"mode": "absolute", "steps": steps},
            },
            "overrides": [],
        },
        "options": {
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
            "colorMode": "value",
            "graphMode": "area",
            "justifyMode": "auto",
            "orientation": "auto",
            "textMode": "auto",
        },
    }
    if decimals is not None:
        p["fieldConfig"]["defaults"]["decimals"] = decimals
    return p


def timeseries(title: str, desc: str, targets, unit: str, stack: bool = False, minv=None,
               maxv=None, draw: str = "line") -> dict:
    defaults = {
        "unit": unit,
        "color": {"mode": "palette-classic"},
        "custom": {
            "drawStyle": draw,
            "lineWidth": 1,
            "fillOpacity": 20 if stack else 10,
            "showPoints": "never",
            "spanNulls": False,
            "stacking": {"mode": "normal" if stack else "none", "group": "A"},
        },
    }
    if minv is not None:
        defaults["min"] = minv
    if maxv is not None:
        defaults["max"] = maxv
    return {
        "type": "timeseries",
        "title": title,
        "description": desc,
        "datasource": DS,
        "targets": refs(targets),
        "fieldConfig": {"defaults": defaults, "overrides": []},
        "options": {
            "legend": {"displayMode": "table", "placement": "bottom", "calcs": ["mean", "lastNotNull", "max"]},
            "tooltip": {"mode": "multi", "sort": "desc"},
        },
    }


def table(title: str, desc: str, targets) -> dict:
    return {
        "type": "table",
        "title": title,
        "description": desc,
        "datasource": DS,
        "targets": [dict(t, format="table") for t in refs(targets, instant=True)],
        "fieldConfig": {"defaults": {}, "overrides": []},
        "options": {"showHeader": True},
        "transformations": [{"id": "merge", "options": {}}],
    }


def downloaded(source: str | None) -> str:
    sel = f'{AGENT},source="{source}"' if source else AGENT
    return f"sum(rate(hivecast_agent_downloaded_bytes_total{{{sel}}}[{RI}]))"


def offload_expr(by: str = "") -> str:
    grp = f" by ({by})" if by else ""
    peer = f'sum{grp} (rate(hivecast_agent_downloaded_bytes_total{{{AGENT},source="peer"}}[{RI}]))'
    total = f'sum{grp} (rate(hivecast_agent_downloaded_bytes_total{{{AGENT},source=~"origin|peer"}}[{RI}]))'
    return f"{peer}\n/\n({total} > 0)"


def build() -> dict:
    L = Layout()
    red_amber_green = [
        {"color": "red", "value": None},
        {"color": "orange", "value": 0.5},
        {"color": "green", "value": 0.7},
    ]
    zero_good = [{"color": "green", "value": None}, {"color": "red", "value": 1}]

    L.row("Overview")
    L.add(stat("Offload", "Share of segment bytes the agents got from peers instead of the origin: "
               "peer / (peer + origin). Ideal for a swarm of N agents: 1 - 1/N.",
               [(offload_expr(), "offload")], "percentunit", red_amber_green, 1), 4, 4)
    L.add(stat("Origin egress", "Segment bytes per second the agents fetch from origins.",
               [(downloaded("origin"), "origin")], "Bps"), 4, 4)
    L.add(stat("From peers", "Segment bytes per second the agents receive from peers.",
               [(downloaded("peer"), "peer")], "Bps"), 4, 4)
    L.add(stat("Agents", "Agents reporting metrics (hivecast_agent_build_info).",
               [(f"count(hivecast_agent_build_info{{{AGENT}}})", "agents")], "short"), 3, 4)
    L.add(stat("Peers", "Peer connections over all selected agents.",
               [(f"sum(hivecast_agent_peers{{{AGENT}}})", "peers")], "short"), 3, 4)
    L.add(stat("Swarms", "Swarms (one per rendition) the tracker holds.",
               [("sum(hivecast_tracker_swarms)", "swarms")], "short"), 3, 4)
    L.add(stat("Integrity failures (1h)", "Peer segments that failed SHA-256 verification in the "
               "last hour. They never reach a player; any value above 0 deserves a look.",
               [(f"sum(increase(hivecast_agent_integrity_failures_total{{{AGENT}}}[1h]))", "failures")],
               "short", zero_good, 0), 3, 4)

    L.row("Offload and traffic")
    L.add(timeseries("Offload %", "Fleet-wide (selected agents) and per agent.",
                     [(offload_expr(), "fleet"), (offload_expr("instance"), "{{instance}}")],
                     "percentunit", minv=0, maxv=1), 12, 8)
    L.add(timeseries("Origin egress vs peer traffic",
                     "Segment bytes/s: downloaded from the origin, received from peers, sent to "
                     "peers, and served to local players.",
                     [(downloaded("origin"), "from origin"),
                      (downloaded("peer"), "from peers"),
                      (f"sum(rate(hivecast_agent_uploaded_bytes_total{{{AGENT}}}[{RI}]))", "sent to peers"),
                      (f"sum(rate(hivecast_agent_served_bytes_total{{{AGENT}}}[{RI}]))", "served to players")],
                     "Bps", minv=0), 12, 8)
    L.add(timeseries("Downloaded by source, per agent", "Stacked segment bytes/s per agent and source.",
                     [(f"sum by (instance, source) (rate(hivecast_agent_downloaded_bytes_total{{{AGENT}}}[{RI}]))",
                       "{{instance}} {{source}}")], "Bps", stack=True, minv=0), 12, 8)
    L.add(timeseries("Sent to peers, per agent", "Upload contribution of each agent (bytes/s).",
                     [(f"sum by (instance) (rate(hivecast_agent_uploaded_bytes_total{{{AGENT}}}[{RI}]))",
                       "{{instance}}")], "Bps", minv=0), 12, 8)

    L.row("Peers and swarms")
    L.add(timeseries("Peers per agent", "Connected peers of each agent.",
                     [(f"hivecast_agent_peers{{{AGENT}}}", "{{instance}}")], "short", minv=0), 12, 8)
    L.add(timeseries("Tracker state", "Peers, swarms and WebSocket connections the tracker holds.",
                     [("sum(hivecast_tracker_peers)", "peers"),
                      ("sum(hivecast_tracker_swarms)", "swarms"),
                      ("sum(hivecast_tracker_connections)", "connections")], "short", minv=0), 12, 8)

    L.row("Segment fetch")
    L.add(timeseries("Segment fetch time by source",
                     "Time to get a segment, from the origin or from peers (histogram quantiles).",
                     [(f"histogram_quantile({q}, sum by (le, source) (rate(hivecast_agent_segment_fetch_seconds_bucket{{{AGENT}}}[{RI}])))",
                       f"p{int(q * 100)} {{{{source}}}}") for q in (0.5, 0.95, 0.99)], "s", minv=0), 12, 8)
    L.add(timeseries("Segments fetched by source", "Segments per second, by source.",
                     [(f"sum by (source) (rate(hivecast_agent_segment_fetch_seconds_count{{{AGENT}}}[{RI}]))",
                       "{{source}}")], "ops", stack=True, minv=0), 12, 8)
    L.add(timeseries("Cache hit ratio", "Player segment requests served from the agent cache.",
                     [(f"sum(rate(hivecast_agent_cache_hits_total{{{AGENT}}}[{RI}]))\n/\n"
                       f"((sum(rate(hivecast_agent_cache_hits_total{{{AGENT}}}[{RI}])) + "
                       f"sum(rate(hivecast_agent_cache_misses_total{{{AGENT}}}[{RI}]))) > 0)", "hit ratio")],
                     "percentunit", minv=0, maxv=1), 12, 8)
    L.add(timeseries("Cache size", "Bytes held in each agent's segment cache.",
                     [(f"hivecast_agent_cache_bytes{{{AGENT}}}", "{{instance}}")], "bytes", minv=0), 12, 8)

    L.row("Integrity and origin")
    L.add(timeseries("Integrity failures",
                     "Peer segments that failed verification, per agent (count per interval). "
                     "The sending peer is banned; the segment is fetched again.",
                     [(f"sum by (instance) (increase(hivecast_agent_integrity_failures_total{{{AGENT}}}[{RI}]))",
                       "{{instance}}")], "short", minv=0, draw="bars"), 8, 8)
    L.add(timeseries("Origin requests by result", "Requests per second to origins by outcome.",
                     [(f"sum by (result) (rate(hivecast_agent_origin_requests_total{{{AGENT}}}[{RI}]))",
                       "{{result}}")], "reqps", stack=True, minv=0), 8, 8)
    L.add(timeseries("Origin requests by kind", "Requests per second to origins by kind.",
                     [(f"sum by (kind) (rate(hivecast_agent_origin_requests_total{{{AGENT}}}[{RI}]))",
                       "{{kind}}")], "reqps", stack=True, minv=0), 8, 8)

    L.row("P2P scheduler")
    L.add(timeseries("Origin fetches by reason",
                     "Origin segment fetches per second the P2P scheduler started, by why: elected "
                     "seeds, fallbacks, hedges of late or stalled peer transfers, origin tails (only "
                     "the rest of a late peer transfer), and more. A growing fallback or hedge share "
                     "means peers are slow or scarce.",
                     [(f"sum by (reason) (rate(hivecast_agent_p2p_origin_fetches_total{{{AGENT}}}[{RI}]))",
                       "{{reason}}")], "ops", stack=True, minv=0), 12, 8)
    L.add(timeseries("Origin tails by outcome",
                     "Late peer transfers completed by an HTTP range from the origin: joined, or "
                     "failed (then the whole segment came from the origin). Mostly failed means the "
                     "origin does not serve byte ranges.",
                     [(f"sum by (outcome) (rate(hivecast_agent_p2p_origin_tails_total{{{AGENT}}}[{RI}]))",
                       "{{outcome}}")], "ops", stack=True, minv=0), 12, 8)

    L.row("Tracker")
    L.add(timeseries("Announces by result", "Announces per second the tracker handled, by result.",
                     [(f"sum by (result) (rate(hivecast_tracker_announces_total[{RI}]))", "{{result}}")],
                     "reqps", stack=True, minv=0), 12, 8)
    L.add(timeseries("Signals relayed by kind", "WebRTC offers and answers relayed per second.",
                     [(f"sum by (kind) (rate(hivecast_tracker_signals_relayed_total[{RI}]))", "{{kind}}")],
                     "ops", stack=True, minv=0), 12, 8)

    L.row("Versions")
    L.add(table("Agent versions", "Agents per version.",
                [(f"count by (version) (hivecast_agent_build_info{{{AGENT}}})", "{{version}}")]), 12, 6)
    L.add(table("Tracker versions", "Trackers per version.",
                [("count by (version) (hivecast_tracker_build_info)", "{{version}}")]), 12, 6)

    return {
        "uid": "hivecast-overview",
        "title": "hivecast / Overview",
        "description": "Offload, origin egress vs peer traffic, peers and swarms, segment fetch "
                       "times, integrity failures and tracker activity.",
        "tags": ["hivecast"],
        "editable": True,
        "graphTooltip": 1,
        "refresh": "30s",
        "schemaVersion": 39,
        "version": 1,
        "time": {"from": "now-3h", "to": "now"},
        "timepicker": {},
        "timezone": "",
        "fiscalYearStartMonth": 0,
        "liveNow": False,
        "weekStart": "",
        "links": [],
        "annotations": {
            "list": [
                {
                    "builtIn": 1,
                    "datasource": {"type": "grafana", "uid": "-- Grafana --"},
                    "enable": True,
                    "hide": True,
                    "iconColor": "rgba(0, 211, 255, 1)",
                    "name": "Annotations & Alerts",
                    "type": "dashboard",
                }
            ]
        },
        "templating": {
            "list": [
                {
                    "name": "datasource",
                    "label": "Data source",
                    "type": "datasource",
                    "query": "prometheus",
                    "current": {},
                    "hide": 0,
                    "includeAll": False,
                    "multi": False,
                    "options": [],
                    "refresh": 1,
                    "regex": "",
                },
                {
                    "name": "instance",
                    "label": "Agent",
                    "type": "query",
                    "datasource": DS,
                    "definition": "label_values(hivecast_agent_build_info, instance)",
                    "query": {"query": "label_values(hivecast_agent_build_info, instance)",
                              "refId": "PrometheusVariableQueryEditor-VariableQuery"},
                    "current": {},
                    "hide": 0,
                    "includeAll": True,
                    "allValue": ".*",
                    "multi": True,
                    "options": [],
                    "refresh": 2,
                    "regex": "",
                    "sort": 1,
                },
            ]
        },
        "panels": L.panels,
    }


def render() -> str:
    return json.dumps(build(), indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str]) -> int:
    text = render()
    if argv == ["--check"]:
        if not OUT.is_file() or OUT.read_text() != text:
            print(f"{OUT} is stale: run deploy/grafana/generate-dashboard.py")
            return 1
        return 0
    if argv:
        print(__doc__)
        return 2
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(text)
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
