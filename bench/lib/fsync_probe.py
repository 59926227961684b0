"""The disk's own sync latency while a benchmark runs: rewrites one 4 KiB
block of a file in DIR and fdatasyncs it every 10 ms (100 syncs/s, a small
load beside a server's thousands) until it is sent SIGTERM, then prints
`disk: fdatasync_p50_ms=... fdatasync_p99_ms=... fdatasync_max_ms=...
syncs_over_2ms=...`. A latency benchmark on a shared disk prints it beside
its own figures: a stall in both is the disk's, not the program's.

    python3 bench/lib/fsync_probe.py DIR
"""
import os
import signal
import sys
import time

stop = False


def on_term(_signum, _frame):
    global stop
    stop = True


signal.signal(signal.SIGTERM, on_term)
path = os.path.join(sys.argv[1], "fsync-probe")
fd = os.open(path, os.O_CREAT | os.O_TRUNC | os.O_RDWR)
block = b"p" * 4096
# Allocated and synced first, so each probe rewrites a block in place (no
# metadata to journal), as a server's write-ahead log does once it is grown.
os.pwrite(fd, block * 256, 0)
os.fsync(fd)
took = []
i = 0
while not stop:
    os.pwrite(fd, block, (i % 256) * 4096)
    i += 1
    began = time.perf_counter()
    os.fdatasync(fd)
    took.append((time.perf_counter() - began) * 1000)
    time.sleep(0.01)
os.close(fd)
os.unlink(path)
if not took:
    sys.exit("disk: the probe was stopped before its first sync")
took.sort()
pick = lambda q: took[min(len(took) - 1, int(q * len(took)))]
print(
    f"disk: fdatasync_p50_ms={pick(0.5):.2f} fdatasync_p99_ms={pick(0.99):.2f} "
    f"fdatasync_max_ms={took[-1]:.2f} syncs_over_2ms={sum(1 for t in took if t > 2)}"
)
