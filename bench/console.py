"""Server time of each console page: the requests its script makes (the
page itself, /v1 and /metrics), timed one after another from loopback, with
the console's session cookie, over REPS draws.

usage: console.py ADMIN_URL TOKEN REPS
"""

import statistics
import sys
import time

import urllib3

admin, token, reps = sys.argv[1], sys.argv[2], int(sys.argv[3])
http = urllib3.PoolManager(maxsize=2)
signed = http.request(
    "POST", f"{admin}/console/login", body=f"token={token}",
    headers={"content-type": "application/x-www-form-urlencoded"}, redirect=False,
)
assert signed.status == 303, signed.status
cookie = {"cookie": signed.headers["set-cookie"].split(";")[0]}
newest = http.request("GET", f"{admin}/v1/invocations?function=f3&limit=1", headers=cookie)
newest = __import__("json").loads(newest.data)["invocations"][0]
invocation, trace = newest["id"], newest["trace_id"]

pages = {
    "overview": ["/console/", "/v1/functions", "/v1/queues", "/v1/schedules", "/metrics"],
    "function (1000 newest)": ["/v1/invocations?function=f3&limit=1000"],
    "invocation (and trace)": [f"/v1/invocations/{invocation}", f"/v1/traces/{trace}"],
    "queues": ["/v1/queues", "/v1/dead-letter-queues"],
    "queue": ["/v1/queues/jobs", "/v1/queues/jobs/messages?limit=100"],
    "tables": ["/v1/tables"],
    "buckets": ["/v1/buckets", "/v1/buckets/files/objects?delimiter=/&prefix=&limit=1000"],
    "keys": ["/v1/keys", "/v1/access-keys"],
    "secrets": ["/v1/secrets"],
    "usage": ["/v1/usage"],
    "deployments": ["/v1/deployments"],
    "cluster": ["/v1/cluster"],
}
print("| page | p50 ms | p99 ms | max ms |")
print("| --- | ---: | ---: | ---: |")
for name, paths in pages.items():
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        for path in paths:
            r = http.request("GET", f"{admin}{path}", headers=cookie)
            assert r.status == 200, (path, r.status, r.data[:200])
        times.append((time.perf_counter() - start) * 1000)
    times.sort()
    p99 = times[min(len(times) - 1, int(len(times) * 0.99))]
    print(f"| {name} | {statistics.median(times):.1f} | {p99:.1f} | {times[-1]:.1f} |")
