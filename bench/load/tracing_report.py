#!/usr/bin/env python3
"""The table of bench/tracing.sh, from its results.jsonl and meta.json.

Per configuration (tracing off, each provider at 1 % and 100 % sampling) it takes the
median over the repetitions of requests/s, p50, p99 and requests per CPU-second of
sluice (with its min-max), and the median over repetitions of the ratio of requests
per CPU-second to tracing off in the same repetition (with its min-max). Invalid runs (socket errors, non-2xx) never count;
disturbed runs (see measure.py) only with --accept-disturbed, and then they are
flagged. Spans sent and dropped are summed over the runs used. Standard library only.
"""

import argparse
import json
import os
import statistics

NAMES = {"off": "tracing off", "zipkin": "Zipkin (JSON v2)", "otlp": "OpenTelemetry (OTLP/HTTP)"}
SIZES = {"small": "6 B", "4k": "4 KiB", "64k": "64 KiB"}


def name(cfg):
    if cfg == "off":
        return NAMES["off"]
    provider, pct = cfg.rsplit("-", 1)
    return f"{NAMES[provider]}, {pct} % sampled"


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True)
    p.add_argument("--accept-disturbed", action="store_true")
    args = p.parse_args()
    with open(os.path.join(args.out, "meta.json")) as f:
        meta = json.load(f)
    runs = []
    with open(os.path.join(args.out, "results.jsonl")) as f:
        for line in f:
            if line.strip():
                r = json.loads(line)
                if r.get("final", True):
                    runs.append(r)

    def usable(r):
        return not r["invalid"] and (args.accept_disturbed or not r["disturbed"])

    off = {r["rep"]: r["rpcs"] for r in runs if r["config"] == "off" and usable(r)}
    lines = [
        f"`{meta['command']}` (sluice {meta['sluice']}, {meta['cpu_model']}, kernel {meta['kernel']}), "
        f"started {meta['started']}, load average {' '.join(meta['loadavg_start'])}: "
        f"{meta['reps']} repetition(s) of {meta['duration_s']} s after {meta['warmup_s']} s warm-up, "
        f"{meta['connections']} keep-alive connections, {SIZES[meta['size']]} body.",
        "",
        "| configuration | req/s | p50 ms | p99 ms | req per CPU-s (min–max) | × tracing off (min–max) "
        "| proxy CPU | spans sent | spans per report | spans dropped | runs used |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for cfg in meta["configs"]:
        mine = [r for r in runs if r["config"] == cfg]
        used = [r for r in mine if usable(r)]
        if not used:
            lines.append(f"| {name(cfg)} | — | — | — | — | — | — | — | — | — | 0/{len(mine)} |")
            continue

        def med(k):
            return statistics.median(r[k] for r in used)

        ratios = [r["rpcs"] / off[r["rep"]] for r in used if r["rep"] in off and off[r["rep"]] > 0]
        ratio = f"{statistics.median(ratios):.2f}× ({min(ratios):.2f}–{max(ratios):.2f})" if ratios else "—"
        rpcs = [r["rpcs"] for r in used]
        flag = " (disturbed runs included)" if any(r["disturbed"] for r in used) else ""
        sent = sum(r.get("spans_sent", 0) for r in used)
        dropped = sum(r.get("spans_dropped", 0) for r in used)
        reports = sum(r.get("reports", 0) for r in used)
        per_report = f"{sent / reports:.1f}" if reports else "—"
        lines.append(
            f"| {name(cfg)} | {med('rps'):,.0f} | {med('p50_ms'):.2f} | {med('p99_ms'):.2f} "
            f"| {med('rpcs'):,.0f} ({min(rpcs):,.0f}–{max(rpcs):,.0f}) | {ratio} | {med('proxy_util'):.0%} "
            f"| {sent:,} | {per_report} | {dropped:,} "
            f"| {len(used)}/{len(mine)}{flag} |"
        )
    text = "\n".join(lines) + "\n"
    with open(os.path.join(args.out, "results.md"), "w") as f:
        f.write(text)
    print(text)


if __name__ == "__main__":
    main()
