#!/usr/bin/env bash
# SIGTERM under keep-alive load on loopback, against the sluice binary (release unless
# $SLUICE_BIN): does the drain lose requests?
#
#   bench/soak/sigterm_drain.sh [--runs N] [--connections C] [--drain-time-s S]
#                               [--drain-strategy gradual|immediate] [--concurrency W]
#
# Each run (default 10) starts sluice (W workers, default 1; `--drain-time-s S`, default
# 15) in front of a keep-alive origin, puts wrk -cC (default 64) keep-alive load on it,
# sends SIGTERM after 2 s, and reports: sluice's exit status and how long after SIGTERM
# it exited, wrk's completed requests and its errors. A failed request is one that was
# sent and got no (or a non-2xx) response: a connection that ends (EOF or reset) while
# wrk waits for a response is a wrk read error, one that never answers a timeout. wrk's
# connect and write errors are listed but not counted: once a drained connection closes,
# the listener is gone and wrk keeps reconnecting in a loop; on loopback each refused
# reconnect shows up as a write error. Exit status 1 when any run lost a request, exited
# non-zero or outlived the drain time.
# Installs wrk (Debian) when missing. Binds only 127.0.0.1, ports P..P+1 (28090, 28091).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
. "$ROOT/bench/soak/common.sh"
. "$ROOT/scripts/lib.sh"

RUNS=10 CONNS=64 DRAIN=15 STRATEGY=gradual WORKERS=1 BASE=28090
while [[ $# -gt 0 ]]; do
  case "$1" in
    --runs) RUNS="$2"; shift 2 ;;
    --connections) CONNS="$2"; shift 2 ;;
    --drain-time-s) DRAIN="$2"; shift 2 ;;
    --drain-strategy) STRATEGY="$2"; shift 2 ;;
    --concurrency) WORKERS="$2"; shift 2 ;;
    -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
    *) die "unknown argument $1" ;;
  esac
done
command -v wrk >/dev/null || apt_install wrk
ulimit -n 65536 2>/dev/null || true
LISTEN=$BASE ORIGIN=$((BASE + 1))
BIN="$(sluice_bin)"
http_config "$LISTEN" "$ORIGIN" "$((BASE + 2))" "" > "$WORK/sluice.yaml"
start_origin "$ORIGIN"
log "sluice $BIN, $RUNS runs, wrk -c$CONNS, --drain-time-s $DRAIN --drain-strategy $STRATEGY, $WORKERS worker(s)"

BAD=0
printf '%-4s %-5s %-9s %-9s %-7s %-6s %-6s %-8s %-8s %-8s\n' run exit exit_after requests connect read write timeout non2xx failed
for ((run = 1; run <= RUNS; run++)); do
  "$BIN" -c "$WORK/sluice.yaml" --concurrency "$WORKERS" --drain-time-s "$DRAIN" \
    --drain-strategy "$STRATEGY" --log-level warning > "$WORK/sluice.$run.log" 2>&1 &
  SLUICE=$!
  track "$SLUICE"
  wait_port "$LISTEN" || { cat "$WORK/sluice.$run.log" >&2; die "sluice did not start"; }
  wrk -t2 -c"$CONNS" -d$((DRAIN + 5))s --timeout 5s "http://127.0.0.1:$LISTEN/" > "$WORK/wrk.$run.txt" 2>&1 &
  WRK=$!
  track "$WRK"
  sleep 2
  T0=$(date +%s.%N)
  kill -TERM "$SLUICE"
  STATUS=0
  wait "$SLUICE" || STATUS=$?
  T1=$(date +%s.%N)
  # wrk has nothing left to talk to: stop it early (it prints its totals on SIGINT).
  sleep 0.5
  kill -INT "$WRK" 2>/dev/null || true
  wait "$WRK" || true
  OUT="$WORK/wrk.$run.txt"
  REQS=$(awk '/requests in/ {print $1}' "$OUT")
  read -r CONNECT READ WRITE TIMEOUT < <(awk '/Socket errors/ {gsub(",", ""); print $4, $6, $8, $10; found=1} END {if (!found) print 0, 0, 0, 0}' "$OUT")
  NON2XX=$(awk '/Non-2xx/ {print $NF; found=1} END {if (!found) print 0}' "$OUT")
  FAILED=$((READ + TIMEOUT + NON2XX))
  AFTER=$(echo "$T1 - $T0" | bc)
  printf '%-4s %-5s %-9.2f %-9s %-7s %-6s %-6s %-8s %-8s %-8s\n' \
    "$run" "$STATUS" "$AFTER" "${REQS:-0}" "$CONNECT" "$READ" "$WRITE" "$TIMEOUT" "$NON2XX" "$FAILED"
  if (( FAILED > 0 || STATUS != 0 )) || (( $(echo "$AFTER > $DRAIN + 1" | bc) )); then
    BAD=1
    echo "  run $run: see $OUT and $WORK/sluice.$run.log" >&2
  fi
done
[[ $BAD == 0 ]] || KEEP_WORK=1
exit $BAD
