"""The S3 and SQS endpoints against Nimbus's own /v1 API, in one run.

Each figure is operations per second from one sequential client, and each
S3/SQS figure is divided by the /v1 figure of the same run. An S3 figure
and its /v1 baseline are measured in alternating rounds (ROUNDS of N/ROUNDS
operations each), so a load that moves during the run (other builds on a
shared machine) weighs on both alike:
  - s3 put/get, boto3: what a boto3 user sees (boto3's own signing and
    parsing included);
  - s3 put/get, presigned: the server's S3 path alone (SigV4 check, S3
    layer), driven by the same plain HTTP client as /v1, with URLs signed
    before the clock starts;
  - sqs send+receive+delete, boto3 against /v1 with the same plain client.

usage: aws.py GATEWAY_ADMIN_URL S3_URL SQS_URL KEY_ID SECRET N
"""

import json
import os
import sys
import time
from urllib.parse import quote

import boto3
import urllib3
from botocore.config import Config

admin, s3_url, sqs_url, key_id, secret, n = sys.argv[1:7]
n = int(n)
token = os.environ["NIMBUS_ADMIN_TOKEN"]
body = os.urandom(4096)
http = urllib3.PoolManager(maxsize=4)
auth = {"authorization": f"Bearer {token}"}
session = boto3.session.Session(
    aws_access_key_id=key_id, aws_secret_access_key=secret, region_name="us-east-1"
)
s3 = session.client(
    "s3", endpoint_url=s3_url, config=Config(s3={"addressing_style": "path"})
)
sqs = session.client("sqs", endpoint_url=sqs_url)


ROUNDS = 5


def rates(*measured):
    """Ops/s of each `(label, fn)`, in ROUNDS alternating rounds over keys
    1..n; prints each with its median and 99th percentile latency (stalls
    such as Nagle's or delayed ACKs show there, not in an average)."""
    for _, fn in measured:
        fn(0)  # warm the connection and the server's caches
    spent = {label: 0.0 for label, _ in measured}
    times = {label: [] for label, _ in measured}
    per_round = max(1, n // ROUNDS)
    for r in range(ROUNDS):
        keys = range(1 + r * per_round, 1 + (r + 1) * per_round)
        for label, fn in measured:
            start = time.perf_counter()
            for i in keys:
                t = time.perf_counter()
                fn(i)
                times[label].append(time.perf_counter() - t)
            spent[label] += time.perf_counter() - start
    out = []
    for label, _ in measured:
        t = sorted(times[label])
        per_s = len(t) / spent[label]
        p50, p99 = t[len(t) // 2] * 1e3, t[int(len(t) * 0.99)] * 1e3
        print(f"{label:<40} {per_s:9.0f} /s  p50 {p50:6.2f} ms  p99 {p99:6.2f} ms")
        out.append(per_s)
    return out


def v1_put(i):
    r = http.request("PUT", f"{admin}/v1/buckets/bench/objects/v1/{i}", body=body, headers=auth)
    assert r.status in (200, 201), r.data


def v1_get(i):
    r = http.request("GET", f"{admin}/v1/buckets/bench/objects/v1/{i}", headers=auth)
    assert r.status == 200 and len(r.data) == 4096


def boto_put(i):
    s3.put_object(Bucket="bench", Key=f"boto/{i}", Body=body)


def boto_get(i):
    assert len(s3.get_object(Bucket="bench", Key=f"boto/{i}")["Body"].read()) == 4096


put_urls = [
    s3.generate_presigned_url("put_object", {"Bucket": "bench", "Key": f"pre/{i}"}, ExpiresIn=3600)
    for i in range(n + 1)
]
get_urls = [
    s3.generate_presigned_url("get_object", {"Bucket": "bench", "Key": f"pre/{i}"}, ExpiresIn=3600)
    for i in range(n + 1)
]


def pre_put(i):
    r = http.request("PUT", put_urls[i], body=body)
    assert r.status == 200, r.data


head_urls = [
    s3.generate_presigned_url("head_object", {"Bucket": "bench", "Key": f"pre/{i}"}, ExpiresIn=3600)
    for i in range(n + 1)
]


def pre_get(i):
    r = http.request("GET", get_urls[i])
    assert r.status == 200 and len(r.data) == 4096


def pre_head(i):
    r = http.request("HEAD", head_urls[i])
    assert r.status == 200


print(f"== S3, 4 KiB objects, {n} each, one client, {ROUNDS} alternating rounds")
v1p, pp, bp = rates(
    ("/v1 put (urllib3)", v1_put),
    ("S3 put (presigned, urllib3)", pre_put),
    ("S3 put (boto3)", boto_put),
)
v1g, pg, ph, bg = rates(
    ("/v1 get (urllib3)", v1_get),
    ("S3 get (presigned, urllib3)", pre_get),
    ("S3 head (presigned, urllib3; no body)", pre_head),
    ("S3 get (boto3)", boto_get),
)
print(f"ratio S3/v1 put: presigned {pp / v1p:.2f}x, boto3 {bp / v1p:.2f}x")
print(f"ratio S3/v1 get: presigned {pg / v1g:.2f}x, boto3 {bg / v1g:.2f}x")
print(
    f"S3 get costs {1e3 / pg - 1e3 / v1g:+.3f} ms per request against /v1; "
    f"boto3 adds {1e3 / bg - 1e3 / pg:+.3f} ms on top of the presigned get"
)

queue_url = sqs.get_queue_url(QueueName="bench")["QueueUrl"]
message = "x" * 1024


def v1_cycle(i):
    r = http.request(
        "POST", f"{admin}/v1/queues/bench/messages",
        body=json.dumps({"body": message}), headers={**auth, "content-type": "application/json"},
    )
    assert r.status in (200, 201), r.data
    r = http.request(
        "POST", f"{admin}/v1/queues/bench/receive",
        body=json.dumps({"max_messages": 1}), headers={**auth, "content-type": "application/json"},
    )
    handle = json.loads(r.data)["messages"][0]["receipt_handle"]
    r = http.request(
        "DELETE", f"{admin}/v1/queues/bench/receipts/{quote(handle, safe='')}",
        headers=auth,
    )
    assert r.status in (200, 204), r.data


def sqs_cycle(i):
    sqs.send_message(QueueUrl=queue_url, MessageBody=message)
    got = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=1)["Messages"]
    sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=got[0]["ReceiptHandle"])


print(f"== SQS, 1 KiB messages, send + receive + delete, {n} cycles, one client")
v1q, bq = rates(("/v1 cycle (urllib3)", v1_cycle), ("SQS cycle (boto3)", sqs_cycle))
print(f"ratio SQS/v1 cycle: boto3 {bq / v1q:.2f}x")
