#!/usr/bin/env python3
"""Run a command with a nice value and a short scheduler slice: sched_exec.py NICE SLICE_US CMD...

bench/load.sh starts every measured process (proxies, origin, wrk) through this, in a
session of its own, so that on a machine shared with other work the measured processes
get their cores back quickly:
- sched_setattr(2) sets SCHED_OTHER with nice NICE and, on kernels with EEVDF custom
  slices (Linux 6.12+), a requested slice of SLICE_US microseconds (clamped by the
  kernel to 0.1..100 ms). A waking task with a shorter slice than the running one may
  preempt it at once, instead of waiting out the other task's slice (up to a few ms).
  Older kernels ignore the slice for SCHED_OTHER; on an otherwise idle core it changes
  nothing.
- With autogroup scheduling (kernel.sched_autogroup_enabled), CPU time is first shared
  between sessions, so the task's nice value alone does not count against other
  sessions' work: this also sets the nice of our own new session's autogroup
  (/proc/self/autogroup), after checking that we lead that session.
Attributes are inherited by threads and children, and kept across exec. Standard
library only; Linux x86_64/aarch64.
"""

import ctypes
import os
import platform
import struct
import sys

SYS_SCHED_SETATTR = {"x86_64": 314, "aarch64": 274}
SCHED_OTHER = 0


def main():
    if len(sys.argv) < 4:
        sys.exit("usage: sched_exec.py NICE SLICE_US CMD [ARGS...]")
    nice = int(sys.argv[1])
    slice_ns = int(sys.argv[2]) * 1000
    cmd = sys.argv[3:]
    nr = SYS_SCHED_SETATTR.get(platform.machine())
    if nr is not None:
        # struct sched_attr, SCHED_ATTR_SIZE_VER0 (48 bytes): size, policy, flags, nice,
        # priority, runtime (the slice for SCHED_OTHER), deadline, period.
        attr = ctypes.create_string_buffer(
            struct.pack("=IIQiIQQQ", 48, SCHED_OTHER, 0, nice, 0, slice_ns, 0, 0)
        )
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.syscall(nr, 0, attr, 0) != 0:
            err = ctypes.get_errno()
            # EINVAL: a kernel that rejects the runtime field; keep the nice value.
            os.nice(nice - os.nice(0))
            print(f"sched_exec.py: sched_setattr: {os.strerror(err)}; nice only", file=sys.stderr)
    else:
        os.nice(nice - os.nice(0))
    if nice != 0 and os.getsid(0) == os.getpid():
        try:
            with open("/proc/self/autogroup", "w") as f:
                f.write(str(nice))
        except FileNotFoundError:
            pass  # no autogroup scheduling: the task's nice value is all there is
    os.execvp(cmd[0], cmd)


if __name__ == "__main__":
    main()
