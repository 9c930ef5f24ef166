#!/usr/bin/env python3
"""Renders bench/vnic.sh's runs (JSON lines) as the markdown table of bench/results/vnic.md."""
import json, os, platform, statistics, subprocess, sys, time
path, command, conns, duration = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
runs = [json.loads(l) for l in open(path) if l.strip()]
def med(label, key):
    xs = [r[key] for r in runs if r.get("proxy") == label]
    return statistics.median(xs) if xs else float("nan")
kernel = med("kernel", "rpcs")
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
print(f"# Virtual NIC: sluice's own cost per proxied request\n")
print(f"`{command}` on {platform.node()} ({os.cpu_count()} cores, {cpu}), "
      f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, commit {rev}; keep-alive, 6 B bodies, "
      f"{conns} connections, {duration} s per run, medians of {len([r for r in runs if r.get('proxy') == 'kernel'])} interleaved repetitions.\n")
print("| proxy | req/s (wall) | proxy on CPU | req per proxy CPU-s | µs of proxy CPU per request | × kernel per CPU-s | req per CPU-s less spinning (upper bound) | proxy run-queue delay |")
print("|---|---:|---:|---:|---:|---:|---:|---:|")
for label, name in (("vnic-sw-checksums", "sluice, smol stack on the virtual NIC, software checksums"),
                    ("vnic-offload", "sluice, smol stack on the virtual NIC, checksum offload")):
    secs = med(label, "seconds")
    per_cpu = med(label, "per_cpu_s")
    print(f"| {name} | {med(label, 'rps'):,.0f} | {med(label, 'proxy_cpu_ns') / 1e9 / secs:.0%} | {per_cpu:,.0f} | "
          f"{1e6 / per_cpu:.2f} | {per_cpu / kernel:.2f} | {med(label, 'per_busy_cpu_s'):,.0f} | "
          f"{med(label, 'proxy_delay_ns') / 1e9 / secs:.1%} |")
print(f"| sluice, kernel mode on loopback (wrk, nginx origin) | {med('kernel', 'rps'):,.0f} | "
      f"{med('kernel', 'proxy_util'):.0%} | {kernel:,.0f} | {1e6 / kernel:.2f} | 1.00 | – | "
      f"{med('kernel', 'proxy_run_delay'):.1%} |")
print("\nreq per proxy CPU-s: requests over the proxy thread's (vnic: schedstat on-CPU time, "
      "spinning and futex wake-ups of the load thread included) or process's (kernel: utime+stime) "
      "CPU time in the window. 'Less spinning' also subtracts the wall time the vnic proxy spent "
      "spinning on an empty ring; a thread preempted while it spins has that time counted too, "
      "so it is an upper bound only. Kernel-mode CPU time excludes the loopback work charged to "
      "wrk and nginx; vnic's load thread does its side of TCP itself. Run-queue delay: share of "
      "the window the proxy was runnable but waited for its core (other work on the machine).")
