"""Driven by bench/cluster.sh: starts nodes on the private PostgreSQL it set
up, runs the four measurements and prints a table for BENCHMARKS.md."""

import datetime
import http.client
import json
import os
import re
import signal
import statistics
import subprocess
import threading
import time

WORK = os.environ["WORK"]
SOCK = os.environ["SOCK"]
TOKEN = os.environ["NIMBUS_ADMIN_TOKEN"]
NIMBUS = os.environ["NIMBUS"]
LEASE_MS = int(os.environ["LEASE_MS"])
DBS = 0


def database():
    """A fresh database on the private server: its URL."""
    global DBS
    DBS += 1
    name = f"c{DBS}"
    subprocess.run(["bash", "-c", f"createdb {name}"], check=True)
    return f"postgres:///{name}?host={SOCK}&user=postgres"


def manifest(name, body):
    path = f"{WORK}/{name}.toml"
    with open(path, "w") as f:
        f.write(f'[app]\nname = "{name}"\n\n' + body)
    return path


class Node:
    def __init__(self, manifest, store, node_id, extra=()):
        self.id = node_id
        self.dir = f"{WORK}/data-{node_id}-{os.path.basename(manifest)}"
        self.out = open(f"{self.dir}.out", "w+")
        self.log_path = f"{self.dir}.log"
        self.log = open(self.log_path, "w+")
        self.proc = subprocess.Popen(
            [NIMBUS, "up", manifest, "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0",
             "--data-dir", self.dir, "--store", store, "--node-id", node_id,
             "--lease-ms", str(LEASE_MS), *extra],
            stdout=self.out, stderr=self.log, env={**os.environ, "NIMBUS_LOG": "info"})
        while True:
            if self.proc.poll() is not None:
                raise SystemExit(open(self.log_path).read())
            text = open(f"{self.dir}.out").read()
            m = re.search(r"gateway listening on http://(\S+)\n.*admin listening on http://(\S+)\n", text, re.S)
            if m:
                self.gateway, self.admin = m.group(1), m.group(2)
                break
            time.sleep(0.05)

    def kill(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait()

    def lines(self):
        with open(self.log_path) as f:
            return f.readlines()


def call(addr, method, path, body=None):
    conn = http.client.HTTPConnection(addr, timeout=30)
    conn.request(method, path, body=None if body is None else json.dumps(body),
                 headers={"authorization": f"Bearer {TOKEN}", "content-type": "application/json"})
    response = conn.getresponse()
    data = response.read()
    assert response.status < 300, (response.status, data)
    return json.loads(data) if data else None


def depth(addr, queue):
    stats = call(addr, "GET", f"/v1/queues/{queue}")
    return stats["visible"] + stats["in_flight"] + stats["delayed"]


def stamp(line):
    """The wall-clock time of a log line, in seconds."""
    t = datetime.datetime.strptime(line.split(" ", 1)[0], "%Y-%m-%dT%H:%M:%S.%fZ")
    return t.replace(tzinfo=datetime.timezone.utc).timestamp()


QUEUE_APP = f"""[function.worker]
component = "{os.environ['EVENTS']}"

[queue.jobs]

[[trigger.queue]]
queue = "jobs"
function = "worker"
batch_size = 10
max_concurrency = 4
"""


def queue_throughput(nodes):
    store = database()
    # Filled through a node without the trigger, so nothing drains it yet.
    filler = Node(manifest("fill", "[queue.jobs]\n"), store, "filler")
    messages = int(os.environ["MESSAGES"])
    conn = http.client.HTTPConnection(filler.admin, timeout=30)
    for start in range(0, messages, 10):
        batch = {"messages": [{"body": f"m{n}"} for n in range(start, min(start + 10, messages))]}
        conn.request("POST", "/v1/queues/jobs/messages/batch", body=json.dumps(batch),
                     headers={"authorization": f"Bearer {TOKEN}", "content-type": "application/json"})
        response = conn.getresponse()
        response.read()
        assert response.status == 200, response.status
    filler.stop()
    app = manifest("queue", QUEUE_APP)
    running = [Node(app, store, f"q{i}") for i in range(nodes)]
    # From the moment every node serves until the queue is empty.
    start, before = time.time(), depth(running[0].admin, "jobs")
    assert before > messages // 2, "the first node drained most of the queue alone: send more MESSAGES"
    while depth(running[0].admin, "jobs") > 0:
        # A node serving another version than this app (no trigger) would
        # leave the queue as it is: fail rather than wait for ever.
        assert time.time() - start < 600, f"{nodes} nodes left the queue undrained for 600 s"
        time.sleep(0.05)
    end = time.time()
    for n in running:
        n.stop()
    return before / (end - start)


def http_throughput(nodes):
    store = database()
    app = manifest("http", f"""[function.hello]
component = "{os.environ['HELLO']}"
max_concurrency = 1000

[[trigger.http]]
route = "/..."
function = "hello"
auth = "public"
""")
    running = [Node(app, store, f"h{i}") for i in range(nodes)]
    for n in running:
        subprocess.run(["wrk", "-t1", "-c8", "-d1s", f"http://{n.gateway}/bench"], capture_output=True)
    seconds = os.environ["HTTP_S"]
    loads = [subprocess.Popen(["wrk", "-t1", f"-c{max(4, 16 // nodes)}", f"-d{seconds}s",
                               f"http://{n.gateway}/bench"], stdout=subprocess.PIPE, text=True)
             for n in running]
    total = 0.0
    for load in loads:
        out = load.communicate()[0]
        total += float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    for n in running:
        n.stop()
    return total


STREAM_APP = f"""[function.consumer]
component = "{os.environ['EVENTS']}"

[table.orders]
partition_key = "customer"
stream = "new_and_old_images"

[[trigger.stream]]
table = "orders"
function = "consumer"
max_concurrency = 4
starting_position = "latest"
"""


def held_lanes(node):
    view = call(node.admin, "GET", "/v1/cluster")
    return {n["id"]: [l["name"] for l in n["leases"] if l["name"].startswith("stream:")]
            for n in view["nodes"] if n["live"]}


def failover():
    store = database()
    app = manifest("stream", STREAM_APP)
    a = Node(app, store, "a")
    b = Node(app, store, "b")
    stop = threading.Event()

    def write():
        conn = http.client.HTTPConnection(a.admin, timeout=30)
        n = 0
        while not stop.is_set():
            item = {"item": {"customer": f"c{n % 16:02}", "n": n}}
            conn.request("POST", "/v1/tables/orders/items", body=json.dumps(item),
                         headers={"authorization": f"Bearer {TOKEN}", "content-type": "application/json"})
            conn.getresponse().read()
            n += 1
            time.sleep(0.01)

    writer = threading.Thread(target=write)
    writer.start()
    times = []
    for round in range(int(os.environ["ROUNDS"])):
        # Until the two split the lanes.
        while len(held_lanes(a).get("b", [])) != 2 or len(held_lanes(a).get("a", [])) != 2:
            time.sleep(0.1)
        time.sleep(1)
        # The keys b handles now: a's log shows none of them until failover.
        b_keys = set(re.findall(r'subject=(c\d\d) ', "".join(b.lines()[-400:])))
        killed = time.time()
        b.kill()
        taken = None
        while taken is None:
            time.sleep(0.05)
            for line in a.lines()[::-1]:
                m = re.search(r'subject=(c\d\d) ', line)
                if m and m.group(1) in b_keys and stamp(line) > killed:
                    candidates = [stamp(l) for l in a.lines()
                                  if (k := re.search(r'subject=(c\d\d) ', l)) and k.group(1) in b_keys
                                  and stamp(l) > killed]
                    taken = min(candidates)
                    break
        times.append(taken - killed)
        b = Node(app, store, "b")
    stop.set()
    writer.join()
    a.stop()
    b.stop()
    return times


def cross_node_latency():
    store = database()
    app = manifest("latency", QUEUE_APP.replace("batch_size = 10", "batch_size = 1"))
    a = Node(app, store, "la")
    b = Node(app, store, "lb")
    time.sleep(1)
    acks = subprocess.run([os.environ["QUEUE_SEND"], f"http://{a.admin}", "jobs",
                           os.environ["COUNT"], os.environ["RATE"]],
                          capture_output=True, text=True, check=True).stdout
    acked = dict(line.split() for line in acks.splitlines())
    started = {}
    while True:
        for node in (a, b):
            for line in node.lines():
                m = re.search(r"handled data=(lat-\d+) ", line)
                if m and m.group(1) not in started:
                    started[m.group(1)] = (node.id, stamp(line))
        if len(started) >= len(acked):
            break
        time.sleep(0.2)
    a.stop()
    b.stop()
    result = {}
    for node in ("la", "lb"):
        lat = sorted((t - int(acked[k]) / 1e6) * 1000 for k, (n, t) in started.items() if n == node and k in acked)
        result[node] = lat
    return result


def pick(values, q):
    return values[min(len(values) - 1, int(q * len(values)))]


def main():
    if os.environ.get("PARTS") == "failover":
        times = sorted(failover())
        print(f"lane failover after SIGKILL, --lease-ms {LEASE_MS}: p50 {statistics.median(times):.2f} s, max {max(times):.2f} s, min {min(times):.2f} s ({len(times)} rounds)")
        return
    cores = os.cpu_count()
    print(f"== queue-trigger throughput ({os.environ['MESSAGES']} messages queued first, batch_size 10, max_concurrency 4 per node)")
    queue = {n: queue_throughput(n) for n in (1, 2, 3)}
    for n, rate in queue.items():
        print(f"nodes={n} messages_per_s={rate:.0f}")
    print("== HTTP requests/s (hello, one wrk per node at once)")
    web = {n: http_throughput(n) for n in (1, 2, 3)}
    for n, rate in web.items():
        print(f"nodes={n} requests_per_s={rate:.0f}")
    print(f"== lane failover after SIGKILL (--lease-ms {LEASE_MS}, {os.environ['ROUNDS']} rounds)")
    times = sorted(failover())
    print("seconds=" + " ".join(f"{t:.2f}" for t in times))
    print(f"== send on node A to function start (queue trigger on A and B, {os.environ['COUNT']} messages at {os.environ['RATE']}/s)")
    lat = cross_node_latency()
    print()
    print(f"| {cores} cores, PostgreSQL and every node on this machine | 1 node | 2 nodes | 3 nodes |")
    print("| --- | ---: | ---: | ---: |")
    print("| queue trigger, messages/s | " + " | ".join(f"{queue[n]:.0f} ({queue[n] / queue[1]:.2f}x)" for n in (1, 2, 3)) + " |")
    print("| HTTP hello, requests/s | " + " | ".join(f"{web[n]:.0f} ({web[n] / web[1]:.2f}x)" for n in (1, 2, 3)) + " |")
    print()
    print(f"| lane failover after SIGKILL, --lease-ms {LEASE_MS} | p50 {statistics.median(times):.2f} s | max {max(times):.2f} s | ({len(times)} rounds) |")
    print("| --- | ---: | ---: | ---: |")
    for node, label in (("lb", "started on node B (the other node)"), ("la", "started on node A (the sending node)")):
        values = lat[node]
        if values:
            print(f"| send on A, {label}: {len(values)} messages | p50 {pick(values, 0.5):.2f} ms | p99 {pick(values, 0.99):.2f} ms | max {values[-1]:.2f} ms |")


main()
