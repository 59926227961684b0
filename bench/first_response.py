#!/usr/bin/env python3
"""Times a server from its start to its first 200 answer, in milliseconds.

    first_response.py PORT RUNS CPU -- COMMAND...

Starts COMMAND (which must listen on 127.0.0.1:PORT) RUNS times, each time
polling the port with a plain HTTP/1.1 GET every 0.2 ms from the moment the
process is spawned until one answers 200, then stops it with SIGTERM and
waits for it to exit. COMMAND runs pinned to core CPU (set between fork
and exec, so no `taskset` process is timed). Prints one figure per run, then the median. The
poller is this process (start it pinned to another core than the server);
spawning it is not in the figure, as the clock starts just before `Popen`.
"""

import os
import signal
import socket
import statistics
import subprocess
import sys
import time

POLL_INTERVAL_S = 0.0002
GIVE_UP_S = 30.0


def answered_200(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.sendall(b"GET /bench HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            head = s.recv(64)
            return head.startswith(b"HTTP/1.1 200")
    except OSError:
        return False


def first_answer(port: int, cpu: int, command: list[str], at_answer=lambda pid: None):
    """Starts `command` pinned to core `cpu`, polls `port` until it answers
    200, and returns the milliseconds that took and what `at_answer(pid)`
    read at that moment; the server is stopped with SIGTERM."""
    t0 = time.perf_counter()
    server = subprocess.Popen(
        command,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        preexec_fn=lambda: os.sched_setaffinity(0, {cpu}),
    )
    try:
        while not answered_200(port):
            if server.poll() is not None:
                sys.exit(f"{command[0]} exited ({server.returncode}) before answering")
            if time.perf_counter() - t0 > GIVE_UP_S:
                sys.exit(f"{command[0]} did not answer within 30 s")
            time.sleep(POLL_INTERVAL_S)
        ms = (time.perf_counter() - t0) * 1000.0
        return ms, at_answer(server.pid)
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait()


def main() -> None:
    port, runs, cpu = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    if sys.argv[4] != "--":
        sys.exit(__doc__)
    command = sys.argv[5:]
    figures = [first_answer(port, cpu, command)[0] for _ in range(runs)]
    for ms in figures:
        print(f"{ms:.1f}")
    print(f"median {statistics.median(figures):.1f}")


if __name__ == "__main__":
    main()
