#!/usr/bin/env python3
"""One measured load run against a running proxy, as bench/load.sh reports it.

Runs wrk (pinned to the load core) once for the warm-up and once for the measurement,
and prints one JSON object: wrk's counts and latency percentiles, and the CPU time the
proxy spent (utime + stime from /proc/PID/stat, summed over the proxy's process tree and
every thread, read just before wrk starts and just after it exits, so the interval holds
the whole measured load). It also measures what other load did to the run, and marks the
run `disturbed` when any of these passes its threshold:
- the proxy's run-queue delay: time its threads were runnable but waited for their core
  (field 2 of /proc/PID/task/TID/schedstat) -- the proxy is alone on its core, so this is
  time other processes took from it;
- other processes' share of the load core: that core's busy time (/proc/stat) minus the
  CPU time of wrk and the origin (wrk and the origin also wait for each other there, so
  their run-queue delay is no measure of outside load);
- steal time on either core.
A disturbed run is measured again (up to --attempts), after waiting (up to --quiet-wait
seconds) for both cores to be nearly free of other work. Standard library only; Linux.
"""

import argparse
import json
import os
import signal
import subprocess
import sys
import time

CLK_TCK = os.sysconf("SC_CLK_TCK")
CHILD = None


def read_stat_fields(pid):
    """Fields of /proc/PID/stat after the command name (field 3 onwards)."""
    with open(f"/proc/{pid}/stat") as f:
        data = f.read()
    return data[data.rindex(")") + 2 :].split()


def process_tree(root):
    """PIDs of `root` and all its descendants."""
    children = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            ppid = int(read_stat_fields(d)[1])
        except (FileNotFoundError, ProcessLookupError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(d))
    pids, todo = [], [root]
    while todo:
        p = todo.pop()
        pids.append(p)
        todo.extend(children.get(p, []))
    return pids


def tree_cpu(pids):
    """CPU seconds (utime + stime, all threads) of `pids`."""
    total = 0
    for pid in pids:
        try:
            f = read_stat_fields(pid)
        except (FileNotFoundError, ProcessLookupError):
            continue
        total += int(f[11]) + int(f[12])
    return total / CLK_TCK


def tree_ctxsw(pids):
    """(voluntary, involuntary) context switches summed over every thread of `pids`."""
    vol = invol = 0
    for pid in pids:
        try:
            tids = os.listdir(f"/proc/{pid}/task")
        except (FileNotFoundError, ProcessLookupError):
            continue
        for tid in tids:
            try:
                with open(f"/proc/{pid}/task/{tid}/status") as f:
                    for line in f:
                        if line.startswith("voluntary_ctxt_switches"):
                            vol += int(line.split()[1])
                        elif line.startswith("nonvoluntary_ctxt_switches"):
                            invol += int(line.split()[1])
            except (FileNotFoundError, ProcessLookupError):
                continue
    return vol, invol


def tree_run_delay(pids):
    """Seconds the threads of `pids` spent runnable but waiting for a CPU (schedstat)."""
    total = 0
    for pid in pids:
        try:
            tids = os.listdir(f"/proc/{pid}/task")
        except (FileNotFoundError, ProcessLookupError):
            continue
        for tid in tids:
            # A thread that exits between listdir and read gives ENOENT or ESRCH.
            try:
                with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                    total += int(f.read().split()[1])
            except (FileNotFoundError, ProcessLookupError, IndexError, ValueError):
                continue
    return total / 1e9


def cpu_times():
    """Per CPU: (busy, steal) seconds from /proc/stat; busy = user+nice+system+irq+softirq."""
    out = {}
    with open("/proc/stat") as f:
        for line in f:
            if not line.startswith("cpu") or line.startswith("cpu "):
                continue
            parts = line.split()
            user, nice, system, _idle, _iowait, irq, softirq, steal = (
                int(x) for x in parts[1:9]
            )
            out[int(parts[0][3:])] = (
                (user + nice + system + irq + softirq) / CLK_TCK,
                steal / CLK_TCK,
            )
    return out


def loadavg():
    with open("/proc/loadavg") as f:
        return float(f.read().split()[0])


class Snapshot:
    """Clock, per-CPU times and our processes' CPU times at one instant."""

    def __init__(self, proxy_pids, origin_pids):
        self.t = time.monotonic()
        self.cpus = cpu_times()
        self.proxy = tree_cpu(proxy_pids)
        self.origin = tree_cpu(origin_pids)
        self.ctxsw = tree_ctxsw(proxy_pids)
        self.proxy_delay = tree_run_delay(proxy_pids)
        self.origin_delay = tree_run_delay(origin_pids)


def others(a, b, args, wrk_cpu=0.0):
    """Shares of each core taken by other processes between a and b, and the worst steal."""
    wall = b.t - a.t
    busy = {c: b.cpus[c][0] - a.cpus[c][0] for c in (args.proxy_cpu, args.load_cpu)}
    steal = max(b.cpus[c][1] - a.cpus[c][1] for c in (args.proxy_cpu, args.load_cpu))
    on_proxy = busy[args.proxy_cpu] - (b.proxy - a.proxy)
    on_load = busy[args.load_cpu] - (b.origin - a.origin) - wrk_cpu
    return max(on_proxy, 0.0) / wall, max(on_load, 0.0) / wall, steal / wall


def run_wrk(args, duration):
    """Run wrk for `duration` seconds; return its output and its run-queue delay.

    The delay is read from wrk's threads every 50 ms while it runs (a thread's schedstat
    is gone once it exits), so it misses at most the last 50 ms.
    """
    global CHILD
    sched_exec = os.path.join(os.path.dirname(os.path.abspath(__file__)), "sched_exec.py")
    cmd = [sys.executable, sched_exec, str(args.nice), str(args.slice_us)]
    cmd += ["taskset", "-c", str(args.load_cpu), "wrk"]
    cmd += ["-t", str(args.threads), "-c", str(args.connections), "-d", f"{duration}s"]
    cmd += ["--timeout", "5s", "-s", args.lua]
    if args.close:
        cmd += ["-H", "Connection: close"]
    cmd.append(args.url)
    # In a session of its own, so that sched_exec.py may set its autogroup's nice value.
    # wrk writes a few hundred bytes: the pipe never fills while we poll.
    CHILD = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )
    deadline = time.monotonic() + duration + 30
    delay = 0.0
    while CHILD.poll() is None:
        if time.monotonic() > deadline:
            CHILD.kill()
            CHILD.wait()
            raise SystemExit(f"measure.py: wrk did not finish within {duration + 30}s")
        delay = max(delay, tree_run_delay([CHILD.pid]))
        time.sleep(0.05)
    # wrk is reaped: its CPU time is now in os.times()'s children fields.
    out = CHILD.stdout.read()
    CHILD.stdout.close()
    CHILD = None
    return out, delay


def parse_result(out):
    for line in out.splitlines():
        if line.startswith("RESULT "):
            return {k: int(v) for k, v in (kv.split("=") for kv in line.split()[1:])}
    raise SystemExit(f"measure.py: no RESULT line from wrk:\n{out}")


def wait_quiet(args, proxy_pids, origin_pids):
    """Wait (bounded) until other processes leave both cores nearly idle.

    Returns (seconds waited, whether the last one-second sample was quiet).
    """
    start = time.monotonic()
    while True:
        a = Snapshot(proxy_pids, origin_pids)
        time.sleep(1.0)
        b = Snapshot(proxy_pids, origin_pids)
        on_proxy, on_load, steal = others(a, b, args)
        quiet = max(on_proxy, on_load) <= args.max_other and steal <= args.max_steal
        if quiet or time.monotonic() - start >= args.quiet_wait:
            return time.monotonic() - start, quiet


def measure_once(args, proxy_pids, origin_pids):
    waited, quiet_before = wait_quiet(args, proxy_pids, origin_pids)
    if args.warmup > 0:
        parse_result(run_wrk(args, args.warmup)[0])
    load0 = loadavg()
    kids0 = os.times()
    a = Snapshot(proxy_pids, origin_pids)
    out, wrk_delay = run_wrk(args, args.duration)
    b = Snapshot(proxy_pids, origin_pids)
    kids1 = os.times()
    r = parse_result(out)
    wrk_cpu = (kids1.children_user - kids0.children_user) + (
        kids1.children_system - kids0.children_system
    )
    wall = b.t - a.t
    on_proxy, on_load, steal = others(a, b, args, wrk_cpu)
    proxy_cpu = b.proxy - a.proxy
    proxy_delay = (b.proxy_delay - a.proxy_delay) / wall
    reasons = []
    if proxy_delay > args.max_delay:
        reasons.append(f"the proxy waited {proxy_delay:.1%} of the run for its core")
    if on_load > args.max_other:
        reasons.append(f"other processes took {on_load:.1%} of the load core")
    if steal > args.max_steal:
        reasons.append(f"steal {steal:.1%}")
    invalid = []
    if r["requests"] == 0:
        invalid.append("no requests completed")
    if r["err_connect"] + r["err_read"] + r["err_write"] + r["err_timeout"]:
        invalid.append(
            f"socket errors: connect {r['err_connect']} read {r['err_read']} "
            f"write {r['err_write']} timeout {r['err_timeout']}"
        )
    if r["err_status"]:
        invalid.append(f"{r['err_status']} responses not 2xx/3xx")
    secs = r["duration_us"] / 1e6
    return {
        "requests": r["requests"],
        "duration_s": secs,
        "rps": r["requests"] / secs if secs else 0.0,
        "bytes": r["bytes"],
        "p50_ms": r["p50_us"] / 1000,
        "p90_ms": r["p90_us"] / 1000,
        "p99_ms": r["p99_us"] / 1000,
        "max_ms": r["max_us"] / 1000,
        "proxy_cpu_s": proxy_cpu,
        "proxy_util": proxy_cpu / wall,
        "rpcs": r["requests"] / proxy_cpu if proxy_cpu > 0 else 0.0,
        "proxy_ctxsw_vol": b.ctxsw[0] - a.ctxsw[0],
        "proxy_ctxsw_invol": b.ctxsw[1] - a.ctxsw[1],
        "wrk_cpu_s": wrk_cpu,
        "origin_cpu_s": b.origin - a.origin,
        "wall_s": wall,
        "proxy_run_delay": proxy_delay,
        "origin_run_delay": (b.origin_delay - a.origin_delay) / wall,
        "wrk_run_delay": wrk_delay / wall,
        "other_proxy_core": on_proxy,
        "other_load_core": on_load,
        "steal": steal,
        "loadavg_before": load0,
        "loadavg_after": loadavg(),
        "quiet_wait_s": waited,
        "quiet_before": quiet_before,
        "disturbed": bool(reasons),
        "disturbed_reasons": reasons,
        "invalid": bool(invalid),
        "invalid_reasons": invalid,
    }


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--url", required=True)
    p.add_argument("--proxy-pid", type=int, required=True, help="root of the proxy's processes")
    p.add_argument("--origin-pid", type=int, required=True, help="root of the origin's processes")
    p.add_argument("--proxy-cpu", type=int, required=True)
    p.add_argument("--load-cpu", type=int, required=True)
    p.add_argument("--lua", required=True)
    p.add_argument("--duration", type=int, default=10)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--connections", type=int, default=64)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--close", action="store_true", help="Connection: close on every request")
    p.add_argument("--nice", type=int, default=0, help="wrk's nice value (sched_exec.py)")
    p.add_argument("--slice-us", type=int, default=100, help="wrk's slice (sched_exec.py)")
    p.add_argument(
        "--max-delay",
        type=float,
        default=0.05,
        help="disturbed when the proxy waits this share of the run for its core",
    )
    p.add_argument(
        "--max-other",
        type=float,
        default=0.10,
        help="disturbed when other processes take this share of the load core",
    )
    p.add_argument("--max-steal", type=float, default=0.02)
    p.add_argument("--quiet-wait", type=float, default=3.0)
    p.add_argument("--attempts", type=int, default=2)
    p.add_argument("--label", default="{}", help="JSON object merged into the output")
    args = p.parse_args()

    def on_signal(signum, _frame):
        if CHILD is not None and CHILD.poll() is None:
            CHILD.kill()
            CHILD.wait()
        sys.exit(128 + signum)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    proxy_pids = process_tree(args.proxy_pid)
    origin_pids = process_tree(args.origin_pid)
    # Every attempt is printed (the report keeps the `final` one per run): a run's
    # earlier, disturbed attempts stay on record.
    for attempt in range(1, args.attempts + 1):
        result = measure_once(args, proxy_pids, origin_pids)
        result["attempt"] = attempt
        result["final"] = not result["disturbed"] or attempt == args.attempts
        out = json.loads(args.label)
        out.update(result)
        print(json.dumps(out, sort_keys=True), flush=True)
        if result["final"]:
            break
    flags = ""
    if out["disturbed"]:
        flags += "  DISTURBED: " + "; ".join(out["disturbed_reasons"])
    if out["invalid"]:
        flags += "  INVALID: " + "; ".join(out["invalid_reasons"])
    print(
        f"  {out.get('proxy', '?'):8} {out.get('mode', '?'):9} {out.get('size', '?'):5} "
        f"{out['rps']:9.0f} req/s  p50 {out['p50_ms']:6.2f} ms  p99 {out['p99_ms']:6.2f} ms  "
        f"{out['rpcs']:8.0f} req/CPU-s  proxy CPU {out['proxy_util']:4.0%}  "
        f"proxy waited {out['proxy_run_delay']:.1%}  others on load core "
        f"{out['other_load_core']:.1%}{flags}",
        file=sys.stderr,
    )


if __name__ == "__main__":
    main()
