#!/usr/bin/env python3
"""Compares two `nimbus` builds' start to first response, interleaved.

    start_ab.py ROUNDS CPU MANIFEST A_BINARY B_BINARY

Each round starts A then B, or B then A (alternating), each as
`BINARY up MANIFEST` on a free port pinned to core CPU, with a data
directory of its own that was started once before (so every measured start
is a restart with a cached artifact and an unchanged manifest). This
process polls the port with a raw HTTP/1.1 GET every 0.2 ms (run it pinned
to another core) until one answers 200, and at that moment reads the
server's minor page faults and CPU time from /proc/PID/stat: the page
faults are a count the machine's load does not move, the wall-clock time
is not. The server is then stopped with SIGTERM. Prints each start, then
per build the medians, and the medians' ratios B/A.
"""

import os
import shutil
import socket
import statistics
import sys
import tempfile

# The start and the poll for its first answer are first_response.py's.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from first_response import first_answer  # noqa: E402

TICKS = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def proc_stat(pid: int) -> tuple[int, float]:
    """Minor page faults and CPU seconds (user + system) of `pid` so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # Fields after the command: state is [0], minflt is field 10 of the
    # whole line ([7] here), utime 14 ([11]), stime 15 ([12]).
    return int(fields[7]), (int(fields[11]) + int(fields[12])) / TICKS


def one_start(binary: str, manifest: str, data_dir: str, cpu: int) -> tuple[float, int, float]:
    port = free_port()
    command = [binary, "up", manifest, "--listen", f"127.0.0.1:{port}",
               "--admin-listen", "127.0.0.1:0", "--data-dir", data_dir]
    ms, (faults, cpu_s) = first_answer(port, cpu, command, proc_stat)
    return ms, faults, cpu_s


def main() -> None:
    if len(sys.argv) != 6:
        sys.exit(__doc__)
    rounds, cpu = int(sys.argv[1]), int(sys.argv[2])
    manifest = os.path.abspath(sys.argv[3])
    builds = {"A": os.path.abspath(sys.argv[4]), "B": os.path.abspath(sys.argv[5])}
    work = tempfile.mkdtemp()
    try:
        dirs = {name: os.path.join(work, name) for name in builds}
        for name, binary in builds.items():  # compiles, records the deployment
            one_start(binary, manifest, dirs[name], cpu)
        figures = {name: [] for name in builds}
        for r in range(rounds):
            order = ["A", "B"] if r % 2 == 0 else ["B", "A"]
            for name in order:
                ms, faults, cpu_s = one_start(builds[name], manifest, dirs[name], cpu)
                figures[name].append((ms, faults, cpu_s))
                print(f"round {r + 1} {name}: {ms:.1f} ms, {faults} minor faults, {cpu_s * 1000:.0f} ms CPU")
        medians = {}
        for name in builds:
            ms = statistics.median(f[0] for f in figures[name])
            faults = statistics.median(f[1] for f in figures[name])
            cpu_s = statistics.median(f[2] for f in figures[name])
            medians[name] = (ms, faults, cpu_s)
            print(f"{name} median: {ms:.1f} ms, {faults:.0f} minor faults, {cpu_s * 1000:.0f} ms CPU ({builds[name]})")
        a, b = medians["A"], medians["B"]
        print(f"B/A: time {b[0] / a[0]:.2f}, minor faults {b[1] / a[1]:.2f}")
    finally:
        shutil.rmtree(work)


if __name__ == "__main__":
    main()
