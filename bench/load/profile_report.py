#!/usr/bin/env python3
"""profile.md for bench/load/profile.sh, from the raw files it leaves per proxy.

Per proxy: requests/s and CPU microseconds per request (measure.py, untraced run);
syscalls per request by syscall (`perf trace -s`, divided by the requests wrk completed
in that run); the kernel/user split of CPU samples and the hottest symbols (`perf record
-e cpu-clock`). Standard library only.
"""

import argparse
import collections
import json
import os
import re

TRACE_ROW = re.compile(r"^\s+([a-z_0-9]+)\s+(\d+)\s+(\d+)\s+[\d.]+")
PCT_ROW = re.compile(r"^\s+([\d.]+)%\s+(.*?)\s*$")


def wrk_requests(path):
    with open(path) as f:
        for line in f:
            if line.startswith("RESULT "):
                kv = dict(x.split("=") for x in line.split()[1:])
                return int(kv["requests"]), int(kv["duration_us"]) / 1e6
    raise SystemExit(f"profile_report.py: no RESULT line in {path}")


def syscalls(path):
    """{syscall: (calls, errors)} summed over every thread in a `perf trace -s` file."""
    out = collections.Counter()
    errs = collections.Counter()
    with open(path) as f:
        for line in f:
            m = TRACE_ROW.match(line)
            if m:
                out[m.group(1)] += int(m.group(2))
                errs[m.group(1)] += int(m.group(3))
    return out, errs


def pct_rows(path):
    rows = []
    with open(path) as f:
        for line in f:
            if line.startswith("#"):
                continue
            m = PCT_ROW.match(line)
            if m:
                rows.append((float(m.group(1)), m.group(2)))
    return rows


def split(rows):
    kernel = sum(p for p, name in rows if "[kernel" in name)
    return kernel, 100.0 - kernel


def symbols(rows, kind, n):
    """Top n symbols of kind '[.]' (user) or '[k]' (kernel): (percent, dso, name)."""
    out = []
    for p, rest in rows:
        parts = rest.split(None, 2)
        if len(parts) == 3 and parts[1] == kind:
            name = re.sub(r"\s+-\s+-\s*$", "", parts[2]).strip()
            out.append((p, parts[0], name))
    return out[:n]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--mode", required=True)
    ap.add_argument("--size", required=True)
    ap.add_argument("--proxies", required=True)
    ap.add_argument("--command", required=True)
    args = ap.parse_args()
    proxies = args.proxies.split()
    mode = "keep-alive" if args.mode == "keepalive" else "new connection per request"
    lines = [
        f"## Profile: {mode}, body {args.size}",
        "",
        f"Command: `{args.command}`",
        "",
        "CPU per request from an untraced run (utime+stime of the proxy / requests); "
        "syscalls per request from a run under `perf trace -s`; kernel/user split and "
        "symbols from a run under `perf record -e cpu-clock` (shares of the proxy's "
        "samples). On loopback a proxy's `send` also runs the receiving side's TCP input "
        "and wakes it, in the proxy's context.",
        "",
        "| proxy | req/s | CPU µs / req | ctx switches / req | syscalls / req | kernel | user | proxy waited |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    details = []
    for proxy in proxies:
        d = os.path.join(args.out, proxy)
        with open(os.path.join(d, "measure.json")) as f:
            m = json.load(f)
        reqs, _ = wrk_requests(os.path.join(d, "wrk_trace.txt"))
        calls, errs = syscalls(os.path.join(d, "trace.txt"))
        per_req = sum(calls.values()) / reqs if reqs else 0.0
        sym_rows = pct_rows(os.path.join(d, "report_sym.txt"))
        kernel, user = split(pct_rows(os.path.join(d, "report_dso.txt")))
        cpu_us = 1e6 * m["proxy_cpu_s"] / m["requests"] if m["requests"] else 0.0
        ctx = (m["proxy_ctxsw_vol"] + m["proxy_ctxsw_invol"]) / max(m["requests"], 1)
        flag = " ⚠ disturbed" if m["disturbed"] else ""
        lines.append(
            f"| {proxy} | {m['rps']:,.0f} | {cpu_us:.2f} | {ctx:.3f} | {per_req:.2f} | "
            f"{kernel:.1f}% | {user:.1f}% | {m['proxy_run_delay']:.1%}{flag} |"
        )
        details += [f"### {proxy}", "", "Syscalls per request (perf trace -s):", ""]
        details += ["| syscall | per request | errors per request |", "|---|---:|---:|"]
        for name, n in calls.most_common():
            if n / reqs < 0.001:
                continue
            details.append(f"| {name} | {n / reqs:.3f} | {errs[name] / reqs:.3f} |")
        details += ["", "Hottest user-space symbols (share of all the proxy's CPU samples):", ""]
        details += ["| share | object | symbol |", "|---:|---|---|"]
        for p, dso, name in symbols(sym_rows, "[.]", 15):
            details.append(f"| {p:.2f}% | {dso} | `{name[:110]}` |")
        details += ["", "Hottest kernel symbols:", ""]
        details += ["| share | symbol |", "|---:|---|"]
        for p, _dso, name in symbols(sym_rows, "[k]", 10):
            details.append(f"| {p:.2f}% | `{name}` |")
        details.append("")
    lines += [""] + details
    path = os.path.join(args.out, "profile.md")
    with open(path, "w") as f:
        f.write("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
