"""SQS through the SQS endpoint against Nimbus's own /v1 API, in one run:
send + receive + delete of 1 KiB messages, one sequential client, as
cycles per second. Three clients: urllib3 on /v1; boto3 on the SQS
endpoint (what a boto3 user sees, its own signing and parsing included);
urllib3 on the SQS endpoint with each request signed by botocore's SigV4
signer (the endpoint's own cost without boto3's). /v1 runs first and last,
so drift shows.

usage: sqs.py ADMIN_URL SQS_URL KEY_ID SECRET N   (NIMBUS_ADMIN_TOKEN set)
"""

import json, os, sys, time
from urllib.parse import quote
import boto3, urllib3
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

admin, sqs_url, key_id, secret, n = sys.argv[1:6]
n = int(n)
token = os.environ["NIMBUS_ADMIN_TOKEN"]
http = urllib3.PoolManager(maxsize=4)
auth = {"authorization": f"Bearer {token}"}
sqs = boto3.client("sqs", endpoint_url=sqs_url, region_name="us-east-1",
                   aws_access_key_id=key_id, aws_secret_access_key=secret)
creds = Credentials(key_id, secret)
message = "x" * 1024

def rate(label, fn):
    fn(0)
    start = time.perf_counter()
    for i in range(1, n + 1):
        fn(i)
    per_s = n / (time.perf_counter() - start)
    print(f"{label:<44} {per_s:9.0f} /s", flush=True)
    return per_s

def v1_cycle(i):
    r = http.request("POST", f"{admin}/v1/queues/bench/messages", body=json.dumps({"body": message}),
                     headers={**auth, "content-type": "application/json"})
    assert r.status in (200, 201), r.data
    r = http.request("POST", f"{admin}/v1/queues/bench/receive", body=json.dumps({"max_messages": 1}),
                     headers={**auth, "content-type": "application/json"})
    handle = json.loads(r.data)["messages"][0]["receipt_handle"]
    r = http.request("DELETE", f"{admin}/v1/queues/bench/receipts/{quote(handle, safe='')}", headers=auth)
    assert r.status in (200, 204), r.data

queue_url = sqs.get_queue_url(QueueName="bench")["QueueUrl"]

def boto_cycle(i):
    sqs.send_message(QueueUrl=queue_url, MessageBody=message)
    got = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=1)["Messages"]
    sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=got[0]["ReceiptHandle"])

def signed(action, payload):
    body = json.dumps(payload).encode()
    req = AWSRequest(method="POST", url=sqs_url + "/", data=body,
                     headers={"Content-Type": "application/x-amz-json-1.0", "X-Amz-Target": f"AmazonSQS.{action}"})
    SigV4Auth(creds, "sqs", "us-east-1").add_auth(req)
    r = http.request("POST", sqs_url + "/", body=body, headers=dict(req.headers))
    assert r.status == 200, r.data
    return json.loads(r.data)

def plain_cycle(i):
    signed("SendMessage", {"QueueUrl": queue_url, "MessageBody": message})
    got = signed("ReceiveMessage", {"QueueUrl": queue_url, "MaxNumberOfMessages": 1})["Messages"]
    signed("DeleteMessage", {"QueueUrl": queue_url, "ReceiptHandle": got[0]["ReceiptHandle"]})

print(f"== SQS, 1 KiB messages, send + receive + delete, {n} cycles, one client")
v1 = rate("/v1 cycle (urllib3)", v1_cycle)
b = rate("SQS cycle (boto3, JSON 1.0)", boto_cycle)
p = rate("SQS cycle (urllib3 + botocore SigV4 signing)", plain_cycle)
v1b = rate("/v1 cycle again (urllib3)", v1_cycle)
print(f"ratio SQS/v1: boto3 {b / v1:.2f}x, plain signed client {p / v1:.2f}x (v1 second run {v1b:.0f}/s)")
