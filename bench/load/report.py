#!/usr/bin/env python3
"""Tables and plot for bench/load.sh, from its results.jsonl and meta.json.

Per cell (mode x body x proxy) it takes the median over the repetitions of requests/s,
p50, p99 and requests per proxy CPU-second, and divides each by nginx's median for the
same cell in the same invocation. Invalid runs (socket errors, non-2xx responses) never
count. Disturbed runs (other load on the measured cores, see measure.py) are left out
unless --accept-disturbed is given; then they count and the cell is flagged. A cell with
no run left is shown as refused. Writes results.md, results.dat and results.svg (gnuplot)
into --out. Standard library only.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys

PROXY_ORDER = ["sluice", "nginx", "haproxy"]
PROXY_NAMES = {"sluice": "sluice (kernel)", "nginx": "nginx", "haproxy": "HAProxy"}
MODE_NAMES = {"keepalive": "keep-alive", "close": "new connection per request"}
MODE_SHORT = {"keepalive": "keep-alive", "close": "new conn"}
SIZE_NAMES = {"small": "6 B", "4k": "4 KiB", "64k": "64 KiB"}
METRICS = ["rps", "p50_ms", "p99_ms", "rpcs", "proxy_util", "proxy_run_delay", "other_load_core"]


def load(out):
    with open(os.path.join(out, "meta.json")) as f:
        meta = json.load(f)
    runs = []
    with open(os.path.join(out, "results.jsonl")) as f:
        for line in f:
            if line.strip():
                r = json.loads(line)
                if r.get("final", True):
                    runs.append(r)
    return meta, runs


def cells(meta, runs, accept_disturbed):
    """{(mode, size, proxy): summary} with medians and counts."""
    out = {}
    for mode in meta["modes"]:
        for size in meta["sizes"]:
            for proxy in meta["proxies"]:
                mine = [
                    r
                    for r in runs
                    if (r["mode"], r["size"], r["proxy"]) == (mode, size, proxy)
                ]
                valid = [r for r in mine if not r["invalid"]]
                quiet = [r for r in valid if not r["disturbed"]]
                used = valid if accept_disturbed else quiet
                s = {
                    "runs": len(mine),
                    "invalid": len(mine) - len(valid),
                    "disturbed": len(valid) - len(quiet),
                    "used": len(used),
                    "flagged": accept_disturbed and len(used) > len(quiet),
                    "invalid_reasons": sorted({x for r in mine for x in r["invalid_reasons"]}),
                }
                for m in METRICS:
                    s[m] = statistics.median(r[m] for r in used) if used else None
                out[(mode, size, proxy)] = s
    return out


def ratio(a, b):
    if a is None or b is None or b == 0:
        return None
    return a / b


def fmt(v, digits=0):
    if v is None:
        return "—"
    return f"{v:,.{digits}f}"


def pct(v, digits=0):
    return "—" if v is None else f"{v:.{digits}%}"


def fmt_ratio(v):
    return "—" if v is None else f"{v:.2f}×"


def table(meta, summary, mode):
    lines = [
        f"### {MODE_NAMES[mode]}",
        "",
        "| body | proxy | req/s | ×nginx | p50 ms | p99 ms | ×nginx | req per CPU-s "
        "| ×nginx | proxy CPU | proxy waited | others on load core | runs used |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for size in meta["sizes"]:
        ref = summary[(mode, size, "nginx")]
        for proxy in [p for p in PROXY_ORDER if p in meta["proxies"]]:
            s = summary[(mode, size, proxy)]
            used = f"{s['used']}/{s['runs']}"
            notes = []
            if s["disturbed"]:
                notes.append(f"{s['disturbed']} disturbed")
            if s["invalid"]:
                notes.append(f"{s['invalid']} invalid")
            if notes:
                used += " (" + ", ".join(notes) + ")"
            if s["used"] == 0:
                used += " **refused**"
            elif s["flagged"]:
                used += " ⚠"
            name = f"**{PROXY_NAMES[proxy]}**" if proxy == "sluice" else PROXY_NAMES[proxy]
            lines.append(
                f"| {SIZE_NAMES[size]} | {name} | {fmt(s['rps'])} | "
                f"{fmt_ratio(ratio(s['rps'], ref['rps']))} | {fmt(s['p50_ms'], 2)} | "
                f"{fmt(s['p99_ms'], 2)} | {fmt_ratio(ratio(s['p99_ms'], ref['p99_ms']))} | "
                f"{fmt(s['rpcs'])} | {fmt_ratio(ratio(s['rpcs'], ref['rpcs']))} | "
                f"{pct(s['proxy_util'])} | {pct(s['proxy_run_delay'], 1)} | "
                f"{pct(s['other_load_core'], 1)} | {used} |"
            )
    return lines


def targets(meta, summary):
    """The issue's kernel-mode targets, checked on the small body."""
    rows = []
    checks = [
        ("keepalive", "req per CPU-s ≥ 1.5× nginx, keep-alive, 6 B", "rpcs", 1.5, ">="),
        ("close", "req per CPU-s ≥ 1.3× nginx, new connection, 6 B", "rpcs", 1.3, ">="),
        ("keepalive", "p99 ≤ nginx, keep-alive, 6 B", "p99_ms", 1.0, "<="),
        ("close", "p99 ≤ nginx, new connection, 6 B", "p99_ms", 1.0, "<="),
    ]
    if "sluice" not in meta["proxies"] or "small" not in meta["sizes"]:
        return rows
    for mode, text, metric, bound, op in checks:
        if mode not in meta["modes"]:
            continue
        r = ratio(summary[(mode, "small", "sluice")][metric], summary[(mode, "small", "nginx")][metric])
        if r is None:
            rows.append(f"| {text} | — | not measured (refused or missing) |")
            continue
        met = r >= bound if op == ">=" else r <= bound
        rows.append(f"| {text} | {r:.2f}× | {'met' if met else '**missed**'} |")
    return rows


def write_markdown(meta, runs, summary, path, accept_disturbed, plot_problem):
    disturbed = sum(1 for r in runs if r["disturbed"])
    invalid = sum(1 for r in runs if r["invalid"])
    attempts = sum(r.get("attempt", 1) for r in runs)  # earlier attempts: not final
    lines = [
        "## Load comparison: sluice (kernel mode) vs nginx vs HAProxy",
        "",
        f"Command: `{meta['command']}`"
        + (
            " (tables then remade with `python3 bench/load/report.py --out bench/out "
            "--accept-disturbed`)"
            if accept_disturbed and "--accept-disturbed" not in meta["command"]
            else ""
        ),
        "",
        f"- Machine: {meta['cpu_model']}, CPUs {meta['cpus_online']}, "
        f"{meta['mem_gib']} GiB, Linux {meta['kernel']}"
        + (f", virtualized ({meta['virtualization']})" if meta.get("virtualization") not in (None, "", "none") else ""),
        f"- Versions: sluice {meta['sluice']}, nginx {meta['nginx']}, HAProxy {meta['haproxy']}, "
        f"wrk {meta['wrk']}",
        f"- Each proxy alone on core {meta['proxy_cpu']} with one worker; wrk "
        f"({meta['threads']} thread, {meta['connections']} connections) and the origin "
        f"(nginx, 1 worker) on core {meta['load_cpu']}; loopback only. All of them run "
        f"at nice {meta['nice']} with a {meta['slice_us']} µs scheduler slice, each in a "
        "session of its own (bench/load/sched_exec.py).",
        f"- {meta['reps']} repetition(s) interleaved across proxies (order rotated each time); "
        f"each run {meta['warmup_s']} s warm-up + {meta['duration_s']} s measured; "
        "values are medians over the repetitions, ratios are to nginx in the same invocation.",
        "- req per CPU-s: requests completed / (utime+stime of all the proxy's processes and "
        "threads over the measured interval, /proc/PID/stat). On loopback the kernel runs the "
        "peer's TCP receive path in the sender's context, so this includes kernel TCP work "
        "done on the proxy's behalf, for every proxy alike. proxy CPU: share of its core used; "
        "proxy waited: share of the run the proxy was runnable but waited for its core "
        "(other work ran there); others on load core: share of the load core other "
        "processes took (medians, like the other columns).",
        f"- Disturbance: a run is disturbed when the proxy waited for its core (run-queue "
        f"delay, /proc/PID/task/*/schedstat) more than {meta['max_delay']:.0%} of the run, "
        f"other processes took more than {meta['max_other']:.0%} of the load core, or steal "
        f"passed {meta['max_steal']:.0%}; {disturbed} of {len(runs)} kept runs were disturbed "
        f"({attempts} measured in all, re-measured up to {meta['attempts']}×), {invalid} invalid. "
        + (
            "Disturbed runs are **included** and their cells flagged ⚠."
            if accept_disturbed
            else "Disturbed runs are left out; a cell with none left is refused."
        ),
        f"- Load average at start: {' '.join(meta['loadavg_start'])}; started {meta['started']}.",
        "",
    ]
    for mode in meta["modes"]:
        lines += table(meta, summary, mode) + [""]
    t = targets(meta, summary)
    if t:
        lines += ["### Targets (issue 9, kernel mode)", "", "| target | sluice / nginx | result |",
                  "|---|---:|---|"] + t + [""]
    reasons = sorted({x for s in summary.values() for x in s["invalid_reasons"]})
    if reasons:
        lines += ["Invalid runs: " + "; ".join(reasons), ""]
    if plot_problem:
        lines += [f"({plot_problem})", ""]
    else:
        lines += ["![requests per CPU-second and p99](results.svg)", ""]
    with open(path, "w") as f:
        f.write("\n".join(lines))


PLOT_HEAD = """
set terminal svg size 1100,780 dynamic font "sans,12" background "white"
set output "{svg}"
set datafile missing "?"
set multiplot layout 2,1 title "sluice vs nginx vs HAProxy: one worker each, loopback ({note})"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set grid ytics
set key top left horizontal
set xtics nomirror
set yrange [0:*]
set offsets 0, 0, graph 0.2, 0
set bmargin 4
"""


def write_plot(meta, summary, out, accept_disturbed):
    """results.dat and results.svg; returns why there is no plot, or None."""
    proxies = [p for p in PROXY_ORDER if p in meta["proxies"]]
    cells_ = [(m, s) for m in meta["modes"] for s in meta["sizes"]]
    dat = os.path.join(out, "results.dat")
    with open(dat, "w") as f:
        f.write("# cell " + " ".join(f"{m}_{p}" for m in ("rpcs", "p99") for p in proxies) + "\n")
        for mode, size in cells_:
            row = [f'"{MODE_SHORT[mode]}\\n{SIZE_NAMES[size]}"']
            for m in ("rpcs_ms", "p99_ms"):
                key = "rpcs" if m == "rpcs_ms" else m
                for p in proxies:
                    v = summary[(mode, size, p)][key]
                    row.append("?" if v is None else f"{v:.3f}")
            f.write(" ".join(row) + "\n")
    panels = [
        ("requests per CPU-second of the proxy (higher is better)", "req / CPU-s", "rpcs", 2),
        ("p99 latency (lower is better)", "ms", "p99_ms", 2 + len(proxies)),
    ]
    note = "disturbed runs included" if accept_disturbed else "disturbed runs left out"
    script = PLOT_HEAD.format(svg=os.path.join(out, "results.svg"), note=note)
    drawn = 0
    for title, ylabel, key, first in panels:
        series = []
        for i, p in enumerate(proxies):
            if any(summary[(m, s, p)][key] is not None for m, s in cells_):
                col = first + i
                xtic = ":xtic(1)" if not series else ""
                series.append(f'"{dat}" using {col}{xtic} title "{PROXY_NAMES[p]}"')
        if not series:
            continue
        drawn += 1
        script += f'set title "{title}"\nset ylabel "{ylabel}"\nplot ' + ", ".join(series) + "\n"
    if drawn == 0:
        return "no plot: every run was refused"
    script += "unset multiplot\n"
    path = os.path.join(out, "results.gp")
    with open(path, "w") as f:
        f.write(script)
    r = subprocess.run(["gnuplot", path], capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"report.py: gnuplot failed:\n{r.stderr}")
    return None


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True)
    p.add_argument("--accept-disturbed", action="store_true")
    args = p.parse_args()
    args.out = os.path.abspath(args.out)
    meta, runs = load(args.out)
    summary = cells(meta, runs, args.accept_disturbed)
    md = os.path.join(args.out, "results.md")
    problem = write_plot(meta, summary, args.out, args.accept_disturbed)
    write_markdown(meta, runs, summary, md, args.accept_disturbed, problem)
    with open(md) as f:
        print(f.read())


if __name__ == "__main__":
    main()
