#!/usr/bin/env bash
# The packet path on a veth pair, with the kernel as reference and limit: the in-driver
# XDP_DROP / XDP_TX ceilings against sluice's AF_XDP loops in the standard xdpsock modes
# (rx-drop, tx-only, l2fwd), 64 B and 1,500 B frames, copy mode, need_wakeup on/off,
# preferred busy polling on/off. One command, as root:
#
#   bench/packet.sh [--rounds N] [--seconds S] [--warmup S] [--sizes "64 1500"]
#                   [--rate PPS] [--cpus R,G] [--no-build] [--out FILE]
#
# Topology: namespaces sxp50-l (the interface under test, sxp500) and sxp50-r (the
# generator's end, sxp501), 10.99.50.0/24. The generator is netsniff-ng's trafgen
# (AF_PACKET TX ring) on core G, sending TCP SYN frames to 10.99.50.2:7000 (sluice's
# steering program redirects exactly those to the AF_XDP socket); the loop under test
# (the xskbench binary, bench/src/bin/xskbench.rs) runs on core R. sxp501 has an
# XDP_DROP program of its own: what comes back (XDP_TX, l2fwd, tx-only) is dropped in
# its driver, the cheapest possible sink (veth can only XDP_TX to a peer with a NAPI).
# tx-only runs without the generator.
#
# Each configuration runs twice per round: flooded (trafgen as fast as it goes: the
# Mpps figure) and at a fixed offered rate every loop sustains (--rate, default 50,000
# packets/s: the CPU figures). Under a flood, the work spent on frames that are then
# dropped (rx ring full) would be charged to the frames that got through; at a fixed
# rate every configuration handles the same packets. tx-only (its own generator) is
# measured flooded only.
#
# On veth the receive side's NAPI (XDP program, AF_XDP copy into the UMEM) runs in the
# sender's softirq, so per-core or per-process figures would charge it to the
# generator. The figure is therefore CPU ns per packet of every task that did packet
# work — the loop, ksoftirqd and the generator (utime+stime from /proc/PID/stat; with
# tick accounting softirq work is charged to the task it interrupted, so it is in
# there, while other people's work on a shared machine is not) — set against the
# in-driver program doing the same job with the same generator in the same round:
# "above in-driver" is what the AF_XDP loop costs beyond XDP_DROP (rx-drop) or XDP_TX
# (l2fwd). Also shown: Mpps, the loop process alone, and the whole machine's non-idle
# time over all cores per packet (/proc/stat; on a shared machine it counts others'
# work too). Rounds are interleaved (every configuration once per round, order
# rotated), so the ratios compare runs that saw the same machine. Table:
# bench/results/packet.md (and the raw lines in bench/results/packet.jsonl).
#
# Bounded: rounds x 38 x (warmup + seconds + ~1.5) s; default 2 x 38 x 5.5 s, ~7 min.
# xskbench starts the generator once its program is attached (attaching XDP resets the
# veth's peer, which ends a running trafgen) and stops it by PID. Every process the
# script starts is stopped by PID and both namespaces (with the veth, and so
# every XDP program on it) are deleted on exit, also on error or Ctrl-C.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"

ROUNDS=2 SECONDS_RUN=3 WARMUP=1 SIZES="64 1500" RATE=50000 CPUS="1,0" BUILD=1 OUT="bench/results/packet.md"
COMMAND="bench/packet.sh${*:+ $*}"
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) ROUNDS="$2"; shift 2 ;;
    --seconds) SECONDS_RUN="$2"; shift 2 ;;
    --warmup) WARMUP="$2"; shift 2 ;;
    --sizes) SIZES="$2"; shift 2 ;;
    --rate) RATE="$2"; shift 2 ;;
    --cpus) CPUS="$2"; shift 2 ;;
    --no-build) BUILD=0; shift ;;
    --out) OUT="$2"; shift 2 ;;
    -h|--help) sed -n '2,33p' "$0"; exit 0 ;;
    *) echo "bench/packet.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
RX_CPU="${CPUS%,*}" GEN_CPU="${CPUS#*,}"
[ "$(id -u)" = 0 ] || { echo "bench/packet.sh: needs root (namespaces, XDP, AF_XDP)" >&2; exit 1; }
PATH="$PATH:/usr/sbin:/sbin"
if ! command -v trafgen >/dev/null 2>&1; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q netsniff-ng >/dev/null
fi
for tool in ip ethtool trafgen taskset python3; do
  command -v "$tool" >/dev/null 2>&1 || { echo "bench/packet.sh: '$tool' not found" >&2; exit 1; }
done

NS_L=sxp50-l NS_R=sxp50-r VA=sxp500 VB=sxp501 OWNED=10.99.50.2 PEER=10.99.50.1
WORK="$(mktemp -d /tmp/sluice-packet-bench.XXXXXX)"
log() { echo "[packet-bench $(date +%H:%M:%S)] $*" >&2; }
SINK=""
cleanup() {
  if [ -n "$SINK" ]; then kill -TERM "$SINK" 2>/dev/null || true; wait "$SINK" 2>/dev/null || true; fi
  # xskbench (run in the foreground) stops its generator by PID; a generator left by a
  # killed xskbench exits when its veth goes with the namespaces.
  ip netns del "$NS_L" 2>/dev/null || true
  ip netns del "$NS_R" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if [ "$BUILD" = 1 ]; then
  log "building xskbench (release)"
  cargo build --release -q -p sluice-bench --bin xskbench
fi
XSKBENCH="${XSKBENCH:-$ROOT/target/release/xskbench}"
[ -x "$XSKBENCH" ] || { echo "bench/packet.sh: $XSKBENCH missing (drop --no-build)" >&2; exit 1; }

for ns in "$NS_L" "$NS_R"; do
  ip netns list | grep -qw "$ns" && { echo "bench/packet.sh: namespace $ns exists (another run?)" >&2; exit 1; }
done
ip netns add "$NS_L"
ip netns add "$NS_R"
ip link add "$VA" netns "$NS_L" type veth peer name "$VB" netns "$NS_R"
ip -n "$NS_L" link set "$VA" up
ip -n "$NS_R" addr add "$PEER/24" dev "$VB"
ip -n "$NS_R" link set "$VB" up
# The sink for returned frames: XDP_DROP in sxp501's driver, for the whole run.
ip netns exec "$NS_R" "$XSKBENCH" xdp-drop --iface "$VB" --warmup 0 --seconds 100000 >/dev/null 2>&1 &
SINK=$!
sleep 0.5
kill -0 "$SINK" 2>/dev/null || { echo "bench/packet.sh: cannot attach XDP_DROP to $VB" >&2; exit 1; }
MAC_A="$(ip netns exec "$NS_L" cat "/sys/class/net/$VA/address")"
MAC_B="$(ip netns exec "$NS_R" cat "/sys/class/net/$VB/address")"

frame_conf() { # frame_conf SIZE > trafgen config: TCP SYN 10.99.50.1:40000 -> OWNED:7000
  python3 - "$1" "$MAC_A" "$MAC_B" "$PEER" "$OWNED" <<'EOF'
import sys
size, dst, src, sip, dip = int(sys.argv[1]), *sys.argv[2:]
mac = lambda m: bytes(int(x, 16) for x in m.split(":"))
ip4 = lambda a: bytes(int(x) for x in a.split("."))
iplen = size - 14
hdr = bytearray([0x45, 0, iplen >> 8, iplen & 0xff, 0, 1, 0x40, 0, 64, 6, 0, 0]) + ip4(sip) + ip4(dip)
s = sum((hdr[i] << 8) | hdr[i + 1] for i in range(0, 20, 2))
s = (s & 0xffff) + (s >> 16); s = (s & 0xffff) + (s >> 16)
hdr[10:12] = bytes([(~s >> 8) & 0xff, ~s & 0xff])
tcp = bytes([0x9c, 0x40, 0x1b, 0x58, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x02, 0xff, 0xff, 0, 0, 0, 0])
f = mac(dst) + mac(src) + b"\x08\x00" + bytes(hdr) + tcp
f += bytes(size - len(f))
print("{ " + ", ".join("0x%02x" % b for b in f) + " }")
EOF
}

gen_cmd() { # gen_cmd SIZE PHASE: the generator's command line (trafgen on GEN_CPU)
  local rate=""
  [ "$2" = rate ] && rate="--rate ${RATE}pps"
  [ -f "$WORK/frame-$1.cfg" ] || frame_conf "$1" >"$WORK/frame-$1.cfg"
  echo "exec ip netns exec $NS_R taskset -c $GEN_CPU nice -n -10 trafgen --dev $VB --conf $WORK/frame-$1.cfg --cpus 1 --no-sock-mem --notouch-irq --no-cpu-stats $rate"
}

# name mode flags...: every configuration of a round.
CONFIGS=()
for size in $SIZES; do
  for phase in flood rate; do
    CONFIGS+=("$size xdp-drop - $phase" "$size xdp-tx - $phase")
    for mode in rxdrop l2fwd; do
      CONFIGS+=("$size $mode - $phase" "$size $mode --no-need-wakeup $phase" "$size $mode --busy-poll $phase")
    done
  done
  CONFIGS+=("$size txonly - flood" "$size txonly --no-need-wakeup flood" "$size txonly --busy-poll flood")
done
RAW="$WORK/raw.txt"
: >"$RAW"

run_one() { # run_one SIZE MODE FLAG PHASE ROUND
  local size="$1" mode="$2" flag="$3" phase="$4" round="$5" extra=() gen="" out line
  [ "$flag" = - ] || extra=("$flag")
  [ "$mode" = txonly ] || gen="$(gen_cmd "$size" "$phase")"
  out="$(timeout $((WARMUP + SECONDS_RUN + 20)) ip netns exec "$NS_L" taskset -c "$RX_CPU" nice -n -10 \
    "$XSKBENCH" "$mode" --iface "$VA" --size "$size" --owned "$OWNED" --warmup "$WARMUP" \
    --seconds "$SECONDS_RUN" --gen "$gen" "${extra[@]+"${extra[@]}"}" 2>&1)" || {
    echo "$out" >&2
    echo "bench/packet.sh: xskbench $mode failed" >&2
    exit 1
  }
  line="$(echo "$out" | grep '^RESULT' || true)"
  [ -n "$line" ] || { echo "$out" >&2; echo "bench/packet.sh: no RESULT from xskbench $mode" >&2; exit 1; }
  echo "round=$round size=$size mode=$mode flag=$flag phase=$phase ${line#RESULT } $(echo "$out" | grep '^STATS' | sed 's/^STATS //')" >>"$RAW"
  log "round $round: $size B $mode $flag $phase: ${line#RESULT }"
}

n=${#CONFIGS[@]}
for round in $(seq "$ROUNDS"); do
  for i in $(seq 0 $((n - 1))); do
    # Rotate the order each round (and reverse every other round).
    if [ $((round % 2)) = 1 ]; then j=$(((i + round) % n)); else j=$(((n - 1 - i + round) % n)); fi
    # shellcheck disable=SC2086 # word splitting wanted
    run_one ${CONFIGS[$j]} "$round"
  done
done

mkdir -p "$(dirname "$OUT")"
python3 - "$RAW" "$OUT" "$COMMAND" "$ROUNDS" "$SECONDS_RUN" "$RX_CPU" "$GEN_CPU" "$RATE" <<'EOF'
import collections, datetime, json, os, platform, sys
raw, out, command, rounds, secs, rx_cpu, gen_cpu, rate = sys.argv[1:]
runs = []
for line in open(raw):
    d = dict(kv.split("=", 1) for kv in line.split())
    for k, v in list(d.items()):
        try:
            d[k] = float(v)
        except ValueError:
            pass
    runs.append(d)
with open(os.path.splitext(out)[0] + ".jsonl", "w") as f:
    for r in runs:
        f.write(json.dumps(r) + "\n")
groups = collections.OrderedDict()
for r in runs:
    groups.setdefault((int(r["size"]), r["mode"], r["flag"]), {}).setdefault(r["phase"], []).append(r)
def per_pkt(rs, key):
    p = sum(r["packets"] for r in rs)
    return sum(r[key] for r in rs) / p if p else float("nan")
def mpps(rs):
    return sum(r["packets"] for r in rs) / sum(r["seconds"] for r in rs) / 1e6
order = {"xdp-drop": 0, "xdp-tx": 1, "rxdrop": 2, "l2fwd": 3, "txonly": 4}
flags = {"-": "on / off", "--no-need-wakeup": "off / off", "--busy-poll": "on / on"}
cpu_phase = lambda mode: "flood" if mode == "txonly" else "rate"
ref = {}
for (size, mode, flag), ph in groups.items():
    if mode in ("xdp-drop", "xdp-tx") and "rate" in ph:
        ref[(size, mode)] = per_pkt(ph["rate"], "tasks_ns")
lines = []
now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
lines.append(f"Command: `{command}` ({now}, Linux {platform.release()}, {os.cpu_count()} cores; "
             f"loop on core {rx_cpu}, trafgen on core {gen_cpu}; {rounds} interleaved rounds "
             f"of {secs} s per configuration and phase; CPU figures at {int(rate):,} packets/s offered; "
             "veth, native XDP, AF_XDP copy mode)")
lines.append("")
lines.append("| frame | loop | need_wakeup / busy-poll | Mpps, flooded | CPU ns/packet, all packet tasks | "
             "above in-driver | × in-driver | loop process | delivered | whole machine |")
lines.append("|---:|---|---|---:|---:|---:|---:|---:|---:|---:|")
for (size, mode, flag), ph in sorted(groups.items(), key=lambda kv: (kv[0][0], order[kv[0][1]], kv[0][2])):
    rs = ph.get(cpu_phase(mode), [])
    tasks = per_pkt(rs, "tasks_ns")
    base = {"rxdrop": "xdp-drop", "l2fwd": "xdp-tx"}.get(mode)
    above = f"+{tasks - ref[(size, base)]:.0f}" if base and (size, base) in ref else ""
    ratio = f"{tasks / ref[(size, base)]:.2f}× {base.upper().replace('XDP-', 'XDP_')}" if base and (size, base) in ref else ""
    name = {"xdp-drop": "in-driver XDP_DROP", "xdp-tx": "in-driver XDP_TX"}.get(mode, f"AF_XDP {mode}")
    fl = "–" if mode.startswith("xdp-") else flags[flag]
    offered = float(rate) * sum(r["seconds"] for r in rs)
    delivered = f"{100 * sum(r['packets'] for r in rs) / offered:.0f} %" if mode != "txonly" and offered else "–"
    flood = f"{mpps(ph['flood']):.3f}" if "flood" in ph else ""
    lines.append(f"| {size} B | {name} | {fl} | {flood} | {tasks:.0f} | {above} | {ratio} | "
                 f"{per_pkt(rs, 'self_ns'):.0f} | {delivered} | {per_pkt(rs, 'machine_busy_ns'):.0f} |")
lines.append("")
lines.append(f"CPU ns/packet (at {int(rate):,} packets/s offered; tx-only: flooded) = CPU time over the measured "
             "windows of all rounds / packets handled in them (rx-drop: received and dropped; l2fwd / XDP_TX: "
             "sent back; tx-only: sent; XDP_DROP: dropped). All packet tasks = loop + ksoftirqd + generator "
             "(trafgen, with the receive side's softirq work that runs in its context); above / × in-driver "
             "set that against the in-driver program of the same job (rx-drop vs XDP_DROP, l2fwd vs XDP_TX) "
             "with the same generator at the same rate in the same rounds. Loop process: that task alone. "
             "Delivered: packets handled / offered. Whole machine = /proc/stat non-idle time of all cores per "
             "packet: on a shared machine it also counts unrelated work.")
open(out, "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
EOF
