"""SQS through boto3 (the AWS JSON 1.0 protocol) against a running Nimbus.

Run by crates/cli/tests/sqs.rs:
    python3 sqs_boto3.py ENDPOINT KEY_ID SECRET LIMITED_KEY_ID LIMITED_SECRET

The app declares `work` (no dead-letter queue), `jobs` (dead letters to
`dead` after 2 receives), `dead` and `other`. The main key may send,
receive and purge on work, jobs and dead and receive on the undeclared
`ghost`; the limited key may only send to `other`.

Each check prints `ok NAME`; the first failure raises.
"""

import base64
import hashlib
import json
import struct
import sys
import threading
import time

import boto3
import botocore.auth
import botocore.awsrequest
import botocore.config
import botocore.credentials
import urllib.request
import urllib.error

ENDPOINT, KEY_ID, SECRET, LIMITED_ID, LIMITED_SECRET = sys.argv[1:6]
REGION = "eu-west-3"  # any region is accepted


def client(key_id=KEY_ID, secret=SECRET):
    return boto3.client(
        "sqs",
        endpoint_url=ENDPOINT,
        region_name=REGION,
        aws_access_key_id=key_id,
        aws_secret_access_key=secret,
        config=botocore.config.Config(retries={"max_attempts": 1, "mode": "standard"}),
    )


sqs = client()


def ok(name):
    print(f"ok {name}", flush=True)


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def md5_of_attributes(attributes) -> str:
    """The SQS digest of message attributes, computed here independently."""
    out = b""
    for name in sorted(attributes):
        value = attributes[name]
        data_type = value["DataType"]
        out += struct.pack(">I", len(name.encode())) + name.encode()
        out += struct.pack(">I", len(data_type.encode())) + data_type.encode()
        if "BinaryValue" in value:
            raw = value["BinaryValue"]
            out += b"\x02" + struct.pack(">I", len(raw)) + raw
        else:
            text = value["StringValue"].encode()
            out += b"\x01" + struct.pack(">I", len(text)) + text
    return md5(out)


def error_code(call):
    try:
        call()
    except sqs.exceptions.ClientError as e:
        return e.response["Error"]["Code"], e
    raise AssertionError("the call succeeded")


def url(name):
    return sqs.get_queue_url(QueueName=name)["QueueUrl"]


def receive(queue_url, **kwargs):
    return sqs.receive_message(QueueUrl=queue_url, **kwargs).get("Messages", [])


def drain(queue_url):
    sqs.purge_queue(QueueUrl=queue_url)


work, jobs, dead = url("work"), url("jobs"), url("dead")
assert work.endswith("/000000000000/work"), work
assert work.startswith(ENDPOINT), (work, ENDPOINT)
ok("get_queue_url")

listed = sqs.list_queues()["QueueUrls"]
assert sorted(u.rsplit("/", 1)[1] for u in listed) == ["dead", "jobs", "work"], listed
assert sqs.list_queues(QueueNamePrefix="wo")["QueueUrls"] == [work]
page = sqs.list_queues(MaxResults=2)
assert len(page["QueueUrls"]) == 2 and "NextToken" in page, page
rest = sqs.list_queues(MaxResults=2, NextToken=page["NextToken"])
assert len(rest["QueueUrls"]) == 1 and "NextToken" not in rest, rest
ok("list_queues: only queues the key has a grant on, by prefix, in pages")

# CreateQueue answers for declared queues; different attributes are refused.
assert sqs.create_queue(QueueName="work")["QueueUrl"] == work
assert sqs.create_queue(QueueName="work", Attributes={"VisibilityTimeout": "30"})["QueueUrl"] == work
code, e = error_code(lambda: sqs.create_queue(QueueName="work", Attributes={"VisibilityTimeout": "31"}))
assert code == "QueueAlreadyExists" and isinstance(e, sqs.exceptions.QueueNameExists), code
code, e = error_code(lambda: sqs.create_queue(QueueName="ghost"))
assert "declare [queue.ghost] in nimbus.toml" in str(e), str(e)
ok("create_queue: declared queues only")

# QueueDoesNotExist as the typed exception.
try:
    sqs.get_queue_url(QueueName="ghost")
    raise AssertionError("no error")
except sqs.exceptions.QueueDoesNotExist as e:
    assert e.response["Error"]["Code"] == "AWS.SimpleQueueService.NonExistentQueue", e.response
try:
    sqs.receive_message(QueueUrl=work.replace("/work", "/ghost"))
    raise AssertionError("no error")
except sqs.exceptions.QueueDoesNotExist:
    pass
ok("QueueDoesNotExist is raised as the typed exception")

# A batch of ten with typed attributes; MD5s checked here.
attributes = {
    "city": {"DataType": "String", "StringValue": "Zürich"},
    "count": {"DataType": "Number", "StringValue": "42"},
    "blob": {"DataType": "Binary", "BinaryValue": b"\x00\xff\x10"},
    "unit": {"DataType": "Number.float", "StringValue": "-1.5e3"},
}
entries = [
    {"Id": f"m{i}", "MessageBody": f"message {i} \u00e9\r\n<&>", "MessageAttributes": attributes}
    for i in range(10)
]
sent = sqs.send_message_batch(QueueUrl=work, Entries=entries)
assert not sent.get("Failed"), sent
assert len(sent["Successful"]) == 10
by_id = {e["Id"]: e for e in sent["Successful"]}
for entry in entries:
    result = by_id[entry["Id"]]
    assert result["MD5OfMessageBody"] == md5(entry["MessageBody"].encode()), result
    assert result["MD5OfMessageAttributes"] == md5_of_attributes(attributes), result
ok("send_message_batch of 10 with MD5s")

messages = receive(work, MaxNumberOfMessages=10, MessageAttributeNames=["All"],
                   MessageSystemAttributeNames=["All"], VisibilityTimeout=60)
assert len(messages) == 10, len(messages)
bodies = sorted(m["Body"] for m in messages)
assert bodies == sorted(e["MessageBody"] for e in entries), bodies
for m in messages:
    assert m["MD5OfBody"] == md5(m["Body"].encode()), m
    assert m["MessageAttributes"] == attributes, m["MessageAttributes"]
    assert m["MD5OfMessageAttributes"] == md5_of_attributes(attributes), m
    assert m["Attributes"]["ApproximateReceiveCount"] == "1", m["Attributes"]
    sent_at = int(m["Attributes"]["SentTimestamp"])
    assert abs(sent_at - time.time() * 1000) < 600_000, sent_at
    first_received = int(m["Attributes"]["ApproximateFirstReceiveTimestamp"])
    assert sent_at <= first_received <= time.time() * 1000 + 1000, (sent_at, first_received)
    assert "traceparent" not in m["MessageAttributes"]
ok("receive 10 with typed attributes, MD5s and system attributes")

filtered = sqs.change_message_visibility_batch(
    QueueUrl=work,
    Entries=[{"Id": "a", "ReceiptHandle": messages[0]["ReceiptHandle"], "VisibilityTimeout": 0},
             {"Id": "b", "ReceiptHandle": "not-a-handle", "VisibilityTimeout": 0}],
)
assert [s["Id"] for s in filtered["Successful"]] == ["a"], filtered
assert filtered["Failed"][0]["Id"] == "b" and filtered["Failed"][0]["Code"] == "ReceiptHandleIsInvalid", filtered
again = receive(work, MessageAttributeNames=["ci.*", "count"],
                AttributeNames=["ApproximateReceiveCount", "ApproximateFirstReceiveTimestamp"])
assert len(again) == 1 and again[0]["Body"] == messages[0]["Body"], again
# The second receive keeps the first one's time.
assert again[0]["Attributes"] == {
    "ApproximateReceiveCount": "2",
    "ApproximateFirstReceiveTimestamp": messages[0]["Attributes"]["ApproximateFirstReceiveTimestamp"],
}, again[0]
assert again[0]["MessageAttributes"] == {"count": attributes["count"]}, again[0]
assert again[0]["MD5OfMessageAttributes"] == md5_of_attributes({"count": attributes["count"]})
ok("change_message_visibility_batch, attribute filters")

# The old handle is stale now.
try:
    sqs.delete_message(QueueUrl=work, ReceiptHandle=messages[0]["ReceiptHandle"])
    raise AssertionError("a stale handle deleted")
except sqs.exceptions.ReceiptHandleIsInvalid:
    pass
ok("a stale receipt handle raises ReceiptHandleIsInvalid")

handles = [{"Id": f"d{i}", "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages[1:])]
handles.append({"Id": "again", "ReceiptHandle": again[0]["ReceiptHandle"]})
deleted = sqs.delete_message_batch(QueueUrl=work, Entries=handles)
assert len(deleted["Successful"]) == 10 and not deleted.get("Failed"), deleted
assert receive(work) == []
ok("delete_message_batch")

for bad, expected in [
    ([], "AWS.SimpleQueueService.EmptyBatchRequest"),
    ([{"Id": f"x{i}", "ReceiptHandle": "h"} for i in range(11)], "AWS.SimpleQueueService.TooManyEntriesInBatchRequest"),
    ([{"Id": "x", "ReceiptHandle": "h"}, {"Id": "x", "ReceiptHandle": "h"}], "AWS.SimpleQueueService.BatchEntryIdsNotDistinct"),
    ([{"Id": "bad id!", "ReceiptHandle": "h"}], "AWS.SimpleQueueService.InvalidBatchEntryId"),
]:
    code, _ = error_code(lambda: sqs.delete_message_batch(QueueUrl=work, Entries=bad))
    assert code == expected, (code, expected)
ok("batch rules")

# A long poll returns as soon as a message arrives.
got = {}


def long_poll():
    got["messages"] = receive(work, WaitTimeSeconds=20)


poller = threading.Thread(target=long_poll)
poller.start()
sqs.send_message(QueueUrl=work, MessageBody="wake up")
poller.join(timeout=60)
assert not poller.is_alive()
assert [m["Body"] for m in got["messages"]] == ["wake up"], got
sqs.delete_message(QueueUrl=work, ReceiptHandle=got["messages"][0]["ReceiptHandle"])
ok("a long poll returns the message sent while it waits")

# Redelivery after the visibility timeout, with ApproximateReceiveCount 2.
sqs.send_message(QueueUrl=work, MessageBody="again and again")
first = receive(work, VisibilityTimeout=1, AttributeNames=["All"])
assert first[0]["Attributes"]["ApproximateReceiveCount"] == "1"
second = receive(work, WaitTimeSeconds=20, AttributeNames=["All"])
assert second[0]["Body"] == "again and again", second
assert second[0]["Attributes"]["ApproximateReceiveCount"] == "2", second[0]
sqs.change_message_visibility(QueueUrl=work, ReceiptHandle=second[0]["ReceiptHandle"], VisibilityTimeout=0)
third = receive(work, AttributeNames=["ApproximateReceiveCount"])
assert third[0]["Attributes"]["ApproximateReceiveCount"] == "3", third
sqs.delete_message(QueueUrl=work, ReceiptHandle=third[0]["ReceiptHandle"])
ok("redelivery after VisibilityTimeout, change_message_visibility")

# Queue attributes and counts.
sqs.send_message(QueueUrl=work, MessageBody="visible 1")
sqs.send_message(QueueUrl=work, MessageBody="visible 2")
sqs.send_message(QueueUrl=work, MessageBody="in flight")
sqs.send_message(QueueUrl=work, MessageBody="later", DelaySeconds=600)
leased = receive(work, VisibilityTimeout=600)
assert len(leased) == 1
attrs = sqs.get_queue_attributes(QueueUrl=work, AttributeNames=["All"])["Attributes"]
assert attrs["ApproximateNumberOfMessages"] == "2", attrs
assert attrs["ApproximateNumberOfMessagesNotVisible"] == "1", attrs
assert attrs["ApproximateNumberOfMessagesDelayed"] == "1", attrs
assert attrs["VisibilityTimeout"] == "30", attrs
assert attrs["DelaySeconds"] == "0" and attrs["MaximumMessageSize"] == "262144", attrs
assert attrs["QueueArn"] == f"arn:aws:sqs:{REGION}:000000000000:work", attrs
assert "RedrivePolicy" not in attrs
jobs_attrs = sqs.get_queue_attributes(QueueUrl=jobs, AttributeNames=["RedrivePolicy", "QueueArn"])["Attributes"]
assert json.loads(jobs_attrs["RedrivePolicy"]) == {
    "deadLetterTargetArn": f"arn:aws:sqs:{REGION}:000000000000:dead", "maxReceiveCount": 2}, jobs_attrs
assert set(jobs_attrs) == {"RedrivePolicy", "QueueArn"}, jobs_attrs
code, _ = error_code(lambda: sqs.get_queue_attributes(QueueUrl=work, AttributeNames=["Nonsense"]))
assert code == "InvalidAttributeName", code
ok("get_queue_attributes")

sqs.purge_queue(QueueUrl=work)
attrs = sqs.get_queue_attributes(QueueUrl=work, AttributeNames=["ApproximateNumberOfMessages",
    "ApproximateNumberOfMessagesNotVisible", "ApproximateNumberOfMessagesDelayed"])["Attributes"]
assert attrs == {"ApproximateNumberOfMessages": "0", "ApproximateNumberOfMessagesNotVisible": "0",
                 "ApproximateNumberOfMessagesDelayed": "0"}, attrs
ok("purge_queue")

# Dead-lettering after maxReceiveCount (2): the third receive moves it.
sqs.send_message(QueueUrl=jobs, MessageBody="poison")
for count in ("1", "2"):
    m = receive(jobs, VisibilityTimeout=0, AttributeNames=["All"])
    assert m[0]["Attributes"]["ApproximateReceiveCount"] == count, m
assert receive(jobs) == []
moved = receive(dead, WaitTimeSeconds=20)
assert [m["Body"] for m in moved] == ["poison"], moved
sqs.delete_message(QueueUrl=dead, ReceiptHandle=moved[0]["ReceiptHandle"])
ok("dead-lettering after maxReceiveCount")

# Bad input through boto3 itself.
for kwargs, expected in [
    (dict(MaxNumberOfMessages=11), "InvalidParameterValue"),
    (dict(WaitTimeSeconds=21), "InvalidParameterValue"),
    (dict(VisibilityTimeout=43201), "InvalidParameterValue"),
]:
    code, _ = error_code(lambda: sqs.receive_message(QueueUrl=work, **kwargs))
    assert code == expected, (kwargs, code)
for message, expected in [
    (dict(MessageBody="x", DelaySeconds=901), "InvalidParameterValue"),
    (dict(MessageBody="bad \x01 char"), "InvalidMessageContents"),
    (dict(MessageBody="x" * 262145), "InvalidParameterValue"),
    (dict(MessageBody="x", MessageAttributes={"a": {"DataType": "Number", "StringValue": "NaN"}}), "InvalidParameterValue"),
    (dict(MessageBody="x", MessageAttributes={"bad name!": {"DataType": "String", "StringValue": "v"}}), "InvalidParameterValue"),
    (dict(MessageBody="x", MessageAttributes={f"a{i}": {"DataType": "String", "StringValue": "v"} for i in range(11)}), "InvalidParameterValue"),
]:
    code, _ = error_code(lambda: sqs.send_message(QueueUrl=work, **message))
    assert code == expected, (list(message), code)
mixed = sqs.send_message_batch(QueueUrl=work, Entries=[
    {"Id": "good", "MessageBody": "fine"},
    {"Id": "bad", "MessageBody": "x", "MessageAttributes": {"n": {"DataType": "Number", "StringValue": "x"}}},
])
assert [s["Id"] for s in mixed["Successful"]] == ["good"], mixed
assert mixed["Failed"][0]["Id"] == "bad" and mixed["Failed"][0]["SenderFault"], mixed
drain(work)
ok("bad parameters are refused with the SQS codes")

# Every operation without a grant: AccessDenied.
limited = client(LIMITED_ID, LIMITED_SECRET)
receipt = "x"
denied = {
    "get_queue_url": lambda: limited.get_queue_url(QueueName="work"),
    "create_queue": lambda: limited.create_queue(QueueName="work"),
    "get_queue_attributes": lambda: limited.get_queue_attributes(QueueUrl=work, AttributeNames=["All"]),
    "send_message": lambda: limited.send_message(QueueUrl=work, MessageBody="x"),
    "send_message_batch": lambda: limited.send_message_batch(QueueUrl=work, Entries=[{"Id": "a", "MessageBody": "x"}]),
    "receive_message": lambda: limited.receive_message(QueueUrl=work),
    "delete_message": lambda: limited.delete_message(QueueUrl=work, ReceiptHandle=receipt),
    "delete_message_batch": lambda: limited.delete_message_batch(QueueUrl=work, Entries=[{"Id": "a", "ReceiptHandle": receipt}]),
    "change_message_visibility": lambda: limited.change_message_visibility(QueueUrl=work, ReceiptHandle=receipt, VisibilityTimeout=0),
    "change_message_visibility_batch": lambda: limited.change_message_visibility_batch(QueueUrl=work, Entries=[{"Id": "a", "ReceiptHandle": receipt}]),
    "purge_queue": lambda: limited.purge_queue(QueueUrl=work),
    # Its own queue: it may send, not receive or purge.
    "receive_message (other)": lambda: limited.receive_message(QueueUrl=work.replace("/work", "/other")),
    "purge_queue (other)": lambda: limited.purge_queue(QueueUrl=work.replace("/work", "/other")),
}
for name, call in denied.items():
    try:
        call()
        raise AssertionError(f"{name} was allowed")
    except limited.exceptions.ClientError as e:
        assert e.response["Error"]["Code"] == "AccessDenied", (name, e.response)
        assert e.response["ResponseMetadata"]["HTTPStatusCode"] == 403, (name, e.response)
assert limited.list_queues().get("QueueUrls", []) == [work.replace("/work", "/other")]
limited.send_message(QueueUrl=work.replace("/work", "/other"), MessageBody="allowed")
ok("every operation without a grant is refused")

# Signatures: a wrong secret, an unknown key.
for key_id, secret, expected in [
    (KEY_ID, "wrong" + SECRET[5:], "SignatureDoesNotMatch"),
    ("NIMBAAAAAAAAAAAAAAAA", SECRET, "InvalidClientTokenId"),
    ("AKIAIOSFODNN7EXAMPLE", SECRET, "InvalidClientTokenId"),
]:
    other = client(key_id, secret)
    try:
        other.list_queues()
        raise AssertionError("accepted")
    except other.exceptions.ClientError as e:
        assert e.response["Error"]["Code"] == expected, (expected, e.response)
        assert e.response["ResponseMetadata"]["HTTPStatusCode"] == 403
ok("wrong signatures and unknown keys are refused")


def signed(body: bytes, headers: dict, when=None):
    """A request signed with the main key (at `when`, else now), as botocore signs."""
    request = botocore.awsrequest.AWSRequest(method="POST", url=ENDPOINT + "/", data=body, headers=headers)
    credentials = botocore.credentials.Credentials(KEY_ID, SECRET)
    signer = botocore.auth.SigV4Auth(credentials, "sqs", REGION)
    if when is None:
        signer.add_auth(request)
    else:
        import datetime
        from unittest import mock

        class Then(datetime.datetime):
            @classmethod
            def utcnow(cls):
                return when.replace(tzinfo=None)

            @classmethod
            def now(cls, tz=None):
                return when if tz else when.replace(tzinfo=None)

        with mock.patch("botocore.auth.datetime.datetime", Then):
            signer.add_auth(request)
    prepared = request.prepare()
    raw = urllib.request.Request(ENDPOINT + "/", data=body, method="POST", headers=dict(prepared.headers))
    try:
        with urllib.request.urlopen(raw, timeout=30) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def json_request(target, body, when=None):
    headers = {"Content-Type": "application/x-amz-json-1.0"}
    if target:
        headers["X-Amz-Target"] = target
    return signed(body, headers, when)


import datetime

now = datetime.datetime.now(datetime.timezone.utc)
for minutes, accepted in [(-10, True), (10, True), (-20, False), (20, False)]:
    status, _, body = json_request("AmazonSQS.ListQueues", b"{}", now + datetime.timedelta(minutes=minutes))
    if accepted:
        assert status == 200, (minutes, status, body)
    else:
        assert status == 403 and json.loads(body)["__type"].endswith("#SignatureDoesNotMatch"), (minutes, status, body)
        assert b"Signature" in body, body
ok("a clock skew past 15 minutes is refused")

for target, body, expected in [
    ("AmazonSQS.SendMessage", b"{not json", "InvalidParameterValue"),
    ("AmazonSQS.SendMessage", b"[1,2]", "InvalidParameterValue"),
    ("AmazonSQS.SendMessage", json.dumps({"QueueUrl": work}).encode(), "MissingParameter"),
    ("AmazonSQS.SendMessage", json.dumps({"QueueUrl": work, "MessageBody": 5}).encode(), "InvalidParameterValue"),
    ("AmazonSQS.FlyToTheMoon", b"{}", "InvalidAction"),
    ("Other.SendMessage", b"{}", "InvalidAction"),
    ("AmazonSQS.SendMessage", json.dumps({"QueueUrl": "http://x/000000000000/" + "\u202e" * 300, "MessageBody": "x"}).encode(), "AccessDenied"),
    ("AmazonSQS.SetQueueAttributes", json.dumps({"QueueUrl": work, "Attributes": {}}).encode(), "UnsupportedOperation"),
]:
    status, headers, answer = json_request(target, body)
    parsed = json.loads(answer)
    assert parsed["__type"] == f"com.amazonaws.sqs#{expected}", (target, body[:50], parsed)
    assert status in (400, 403), status
assert sqs.list_queues()["QueueUrls"]
ok("malformed JSON requests get 400 and the server keeps serving")

# Nothing was stored by any refused request.
attrs = sqs.get_queue_attributes(QueueUrl=work, AttributeNames=["All"])["Attributes"]
assert attrs["ApproximateNumberOfMessages"] == "0", attrs
print("all boto3 checks passed", flush=True)
