# shellcheck shell=bash
# Shared by bench/load.sh and bench/load/profile.sh: tools, configs, and the processes
# under test (origin, proxies), each started pinned, in a session of its own, and
# remembered by PID so that `cleanup` (installed as the EXIT trap) stops every one.
#
# The caller sets ROOT, OUT, INSTALL, BUILD, NEED_SLUICE, PROXY_CPU, LOAD_CPU, NICE,
# SLICE_US and PORT_BASE, then calls, in order: load_prepare (installs, builds, checks
# cores and ports, renders configs into $OUT/work), and start_origin / start_proxy.

die() { echo "bench: $*" >&2; exit 1; }
log() { echo "[bench $(date +%H:%M:%S)] $*" >&2; }
is_uint() { [[ "$1" =~ ^[0-9]+$ ]]; }

# load_prepare EXTRA_PACKAGES...: everything up to the first process.
# shellcheck disable=SC2120 # the extra packages are optional
load_prepare() {
  if [ "$INSTALL" = 1 ]; then
    apt_install nginx haproxy wrk gnuplot-nox curl python3 util-linux procps iproute2 "$@"
  fi
  local tool c p
  for tool in nginx haproxy wrk gnuplot curl python3 taskset ss setsid; do
    command -v "$tool" >/dev/null 2>&1 || PATH="$PATH:/usr/sbin:/sbin"
    command -v "$tool" >/dev/null 2>&1 || die "'$tool' not found (run without --no-install)"
  done
  ONLINE="$(cat /sys/devices/system/cpu/online)"
  for c in "$PROXY_CPU" "$LOAD_CPU"; do
    taskset -c "$c" true 2>/dev/null || die "core $c is not usable here (online: $ONLINE)"
  done
  if [ "$NEED_SLUICE" = 1 ]; then
    if [ "$BUILD" = 1 ]; then
      apt_install build-essential pkg-config
      ensure_rust
      log "building sluice (release)"
      cargo build --release --bin sluice >&2
    fi
    SLUICE_BIN="$(target_dir)/release/sluice"
    [ -x "$SLUICE_BIN" ] || die "$SLUICE_BIN missing (build it or drop --no-build)"
  fi

  ORIGIN_PORT=$((PORT_BASE + 1))
  declare -gA PORT=([sluice]=$PORT_BASE [nginx]=$((PORT_BASE + 2)) [haproxy]=$((PORT_BASE + 3)))
  for p in $PORT_BASE $ORIGIN_PORT $((PORT_BASE + 2)) $((PORT_BASE + 3)); do
    # SO_REUSEPORT listeners of another process could share the port: insist on free.
    [ -z "$(ss -Hltn "sport = :$p")" ] || die "port $p on this machine is taken (use --port-base)"
  done

  mkdir -p "$OUT"
  OUT="$(cd "$OUT" && pwd)"
  WORK="$OUT/work"
  rm -rf "$WORK" "$OUT/logs"
  mkdir -p "$WORK/www" "$WORK/tmp" "$OUT/logs"
  ln -sfn "$OUT/logs" "$WORK/logs"
  printf 'hello\n' >"$WORK/www/small"
  head -c 4096 /dev/zero | tr '\0' 'a' >"$WORK/www/4k"
  head -c 65536 /dev/zero | tr '\0' 'b' >"$WORK/www/64k"
  declare -gA BODY_BYTES=([small]=6 [4k]=4096 [64k]=65536)
  render origin.nginx.conf "$ORIGIN_PORT" >"$WORK/origin.nginx.conf"
  render proxy.nginx.conf "${PORT[nginx]}" >"$WORK/proxy.nginx.conf"
  render haproxy.cfg "${PORT[haproxy]}" >"$WORK/haproxy.cfg"
  render sluice.yaml "${PORT[sluice]}" >"$WORK/sluice.yaml"
}

target_dir() { # cargo's target directory (CARGO_TARGET_DIR and .cargo/config count)
  local dir=""
  if command -v cargo >/dev/null 2>&1; then
    dir="$(cargo metadata --format-version 1 --no-deps 2>/dev/null |
      python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])' 2>/dev/null)" ||
      dir=""
  fi
  echo "${dir:-$ROOT/target}"
}

render() { # render TEMPLATE PORT > file
  sed -e "s|@WORK@|$WORK|g" -e "s|@PORT@|$2|g" -e "s|@ORIGIN_PORT@|$ORIGIN_PORT|g" \
    "$ROOT/bench/load/$1"
}

STARTED=()
stop_pid() { # stop_pid PID: TERM, wait up to 10 s, then KILL
  local pid="$1" i
  kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
  kill -TERM "$pid" 2>/dev/null || true
  for i in $(seq 100); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    log "pid $pid did not stop on SIGTERM; killing it"
    kill -KILL "$pid" 2>/dev/null || true
  fi
  wait "$pid" 2>/dev/null || true
}
cleanup() { # the EXIT trap: stop what we started, newest first
  local code=$? i
  trap - EXIT INT TERM
  for ((i = ${#STARTED[@]} - 1; i >= 0; i--)); do stop_pid "${STARTED[$i]}"; done
  exit "$code"
}
install_traps() {
  trap cleanup EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
}
track() { STARTED+=("$1"); }
forget() { # forget PID: drop it from STARTED once stopped
  local keep=() p
  for p in "${STARTED[@]}"; do [ "$p" = "$1" ] || keep+=("$p"); done
  STARTED=("${keep[@]}")
}

spawn() { # spawn CPU LOGNAME CMD... : start pinned, in a session of its own, with the
  # nice value and slice of --nice/--slice-us (bench/load/sched_exec.py); PID in SPAWNED.
  # (A background job of a non-interactive script is no process group leader, so setsid
  # does not fork: $! is the command's own PID.)
  local cpu="$1" logname="$2"
  shift 2
  setsid python3 "$ROOT/bench/load/sched_exec.py" "$NICE" "$SLICE_US" \
    taskset -c "$cpu" "$@" >"$OUT/logs/$logname.log" 2>&1 &
  SPAWNED=$!
  track "$SPAWNED"
}

wait_ready() { # wait_ready NAME PID PORT: until each body comes back whole through PORT
  local name="$1" pid="$2" port="$3" size got i
  for i in $(seq 100); do
    kill -0 "$pid" 2>/dev/null || die "$name exited at start; see $OUT/logs/"
    got="$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/small" || true)"
    [ "$got" = 200 ] && break
    sleep 0.1
  done
  for size in small 4k 64k; do
    got="$(curl -s -o /dev/null -w '%{http_code} %{size_download}' "http://127.0.0.1:$port/$size" || true)"
    [ "$got" = "200 ${BODY_BYTES[$size]}" ] ||
      die "$name on port $port: GET /$size gave '$got', want '200 ${BODY_BYTES[$size]}'; see $OUT/logs/"
  done
}

start_origin() { # sets ORIGIN_PID
  spawn "$LOAD_CPU" origin nginx -p "$WORK" -c "$WORK/origin.nginx.conf" \
    -e "$OUT/logs/origin.error.log"
  ORIGIN_PID=$SPAWNED
  wait_ready origin "$ORIGIN_PID" "$ORIGIN_PORT"
}

start_proxy() { # start_proxy NAME: sets PROXY_PID
  case "$1" in
    sluice) spawn "$PROXY_CPU" sluice "$SLUICE_BIN" -c "$WORK/sluice.yaml" --concurrency 1 \
              --log-level warning --drain-time-s 1 ;;
    nginx) spawn "$PROXY_CPU" proxy-nginx nginx -p "$WORK" -c "$WORK/proxy.nginx.conf" \
             -e "$OUT/logs/proxy-nginx.error.log" ;;
    haproxy) spawn "$PROXY_CPU" haproxy haproxy -db -f "$WORK/haproxy.cfg" ;;
    *) die "unknown proxy '$1'" ;;
  esac
  PROXY_PID=$SPAWNED
  wait_ready "$1" "$PROXY_PID" "${PORT[$1]}"
}

stop_tracked() { # stop_tracked PID: stop it and forget it
  stop_pid "$1"
  forget "$1"
}
