#!/usr/bin/env python3
"""Where a unit's time goes, from a simulator trace.

    HIVECAST_SIM_OBTAINED=1 ./target/sim/hivecast-bench sim --agents 1000 --duration 180 \
        --bitrate 3000 --segment-secs 2 --upload 1.5 --churn 0.02 --seed 1 2> trace.log
    python3 benches/scripts/unit-timeline.py trace.log [--stripes 4] [--skip-segments 20]

Reads the `ORG`, `OBT`, `REQ` and `NEED` lines (see `agent/src/sim/mod.rs`, "Diagnostics") and
prints, for units of segments after the first `--skip-segments` and before the last ten:
percentiles of the steps of each peer delivery (first request, the request that was served,
completion), of seeds' and fallbacks' start times, and other origin fetches by seed count.
Times are seconds after the segment was published.
"""

import argparse
import collections
import statistics


def pct(values, q):
    if not values:
        return float("nan")
    v = sorted(values)
    return v[min(len(v) - 1, int(q * len(v)))]


def row(name, values, qs=(0.1, 0.5, 0.9)):
    cells = " ".join(f"{pct(values, q):7.2f}" for q in qs)
    print(f"{name:<44} {cells}   (n = {len(values)})")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("trace")
    ap.add_argument("--stripes", type=int, default=4)
    ap.add_argument("--skip-segments", type=int, default=20)
    args = ap.parse_args()

    need, obt, first_req, last_req, nreq = [], {}, {}, {}, collections.Counter()
    origin = collections.defaultdict(list)  # unit -> [(t, reason)]
    for line in open(args.trace, encoding="utf-8", errors="replace"):
        p = line.split()
        if len(p) < 4 or p[0] not in ("ORG", "OBT", "REQ", "NEED"):
            continue
        agent, unit, t = p[1], int(p[2]), float(p[3])
        if p[0] == "NEED":
            need.append((unit, t))
        elif p[0] == "ORG":
            origin[unit].append((t, p[4]))
        elif p[0] == "OBT" and p[4] != "origin":
            obt[(agent, unit)] = t
        elif p[0] == "REQ":
            first_req.setdefault((agent, unit), t)
            last_req[(agent, unit)] = t
            nreq[(agent, unit)] += 1
    if not origin:
        raise SystemExit("no ORG lines: was the trace made with HIVECAST_SIM_OBTAINED=1?")

    k = args.stripes
    lo = args.skip_segments * k
    hi = max(origin) - 10 * k
    keep = lambda unit: lo <= unit < hi  # noqa: E731

    print(f"{'percentile':<44} {'10th':>7} {'50th':>7} {'90th':>7}")
    row("player plays the segment", [t for s, t in need if keep(s * k)])
    row("elected seeds start the origin fetch",
        [t for u, v in origin.items() if keep(u) for t, r in v if r == "elected"])
    served = [key for key in obt if key in first_req and keep(key[1])]
    row("first peer request", [first_req[x] for x in served])
    row("the request that was served", [last_req[x] for x in served])
    row("unit complete from a peer", [obt[x] for x in served])
    row("requests per peer delivery", [nreq[x] for x in served])
    row("deadline fallbacks start",
        [t for u, v in origin.items() if keep(u) for t, r in v if r == "fallback"])

    by_seeds = collections.defaultdict(list)
    others, worst = [], []
    for u, v in origin.items():
        if not keep(u):
            continue
        seeds = sum(1 for _, r in v if r == "elected")
        other = len(v) - seeds
        by_seeds[seeds // 5 * 5].append(other)
        others.append(other)
        worst.append((other, seeds, u))
    print("\nseeds per unit   units   other origin fetches per unit (mean)")
    for s in sorted(by_seeds):
        print(f"{s:>3}–{s + 4:<3}        {len(by_seeds[s]):>5}   {statistics.mean(by_seeds[s]):8.1f}")
    others.sort(reverse=True)
    top = others[: max(1, len(others) // 20)]
    total = sum(others)
    if total:
        print(f"\nthe 5 % of units with most other origin fetches carry {sum(top) / total:.0%} of them")
    print("worst units (unit: seeds, other origin fetches):",
          ", ".join(f"{u}: {s}, {o}" for o, s, u in sorted(worst, reverse=True)[:6]))


if __name__ == "__main__":
    main()
