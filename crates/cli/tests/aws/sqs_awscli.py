"""SQS through Debian's AWS CLI (/usr/bin/aws 2.9, the query protocol with
XML answers) against a running Nimbus.

Run by crates/cli/tests/sqs.rs:
    python3 sqs_awscli.py ENDPOINT KEY_ID SECRET LIMITED_KEY_ID LIMITED_SECRET

Same app and keys as sqs_boto3.py. Each check prints `ok NAME`; the first
failure raises.
"""

import hashlib
import json
import os
import struct
import subprocess
import sys

ENDPOINT, KEY_ID, SECRET, LIMITED_ID, LIMITED_SECRET = sys.argv[1:6]
AWS = "/usr/bin/aws"
if not os.path.exists(AWS):
    sys.exit("Debian's awscli is missing: apt-get install -y awscli")


def env(key_id, secret):
    e = dict(os.environ)
    e.update(
        AWS_ACCESS_KEY_ID=key_id,
        AWS_SECRET_ACCESS_KEY=secret,
        AWS_DEFAULT_REGION="us-east-1",
        AWS_CONFIG_FILE="/dev/null",
        AWS_SHARED_CREDENTIALS_FILE="/dev/null",
        AWS_PAGER="",
        AWS_MAX_ATTEMPTS="1",
        AWS_EC2_METADATA_DISABLED="true",
    )
    return e


def command(args, key_id=KEY_ID, secret=SECRET):
    return [AWS, "--endpoint-url", ENDPOINT, "--output", "json", "sqs", *args], env(key_id, secret)


def aws(*args, key_id=KEY_ID, secret=SECRET):
    argv, e = command(args, key_id, secret)
    done = subprocess.run(argv, env=e, capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed: {done.stderr}")
    return json.loads(done.stdout) if done.stdout.strip() else {}


def aws_error(*args, key_id=KEY_ID, secret=SECRET):
    argv, e = command(args, key_id, secret)
    done = subprocess.run(argv, env=e, capture_output=True, text=True, timeout=120)
    assert done.returncode != 0, f"{' '.join(args)} succeeded: {done.stdout}"
    return done.stderr


def ok(name):
    print(f"ok {name}", flush=True)


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def md5_of_attributes(attributes) -> str:
    out = b""
    for name in sorted(attributes):
        value = attributes[name]
        data_type = value["DataType"]
        out += struct.pack(">I", len(name.encode())) + name.encode()
        out += struct.pack(">I", len(data_type.encode())) + data_type.encode()
        text = value["StringValue"].encode()
        out += b"\x01" + struct.pack(">I", len(text)) + text
    return md5(out)


work = aws("get-queue-url", "--queue-name", "work")["QueueUrl"]
assert work.endswith("/000000000000/work"), work
urls = aws("list-queues")["QueueUrls"]
assert sorted(u.rsplit("/", 1)[1] for u in urls) == ["dead", "jobs", "work"], urls
assert aws("create-queue", "--queue-name", "work")["QueueUrl"] == work
ok("get-queue-url, list-queues, create-queue")

stderr = aws_error("get-queue-url", "--queue-name", "ghost")
assert "AWS.SimpleQueueService.NonExistentQueue" in stderr, stderr
stderr = aws_error("create-queue", "--queue-name", "ghost")
assert "declare [queue.ghost] in nimbus.toml" in stderr, stderr
ok("QueueDoesNotExist (AWS.SimpleQueueService.NonExistentQueue)")

attributes = {
    "kind": {"DataType": "String", "StringValue": "a & b <c>"},
    "n": {"DataType": "Number", "StringValue": "7"},
}
entries = [
    {"Id": f"m{i}", "MessageBody": f"query message {i} \u00e9 & <x>\r\n", "MessageAttributes": attributes}
    for i in range(10)
]
sent = aws("send-message-batch", "--queue-url", work, "--entries", json.dumps(entries))
assert len(sent["Successful"]) == 10 and not sent.get("Failed"), sent
for result in sent["Successful"]:
    entry = next(e for e in entries if e["Id"] == result["Id"])
    assert result["MD5OfMessageBody"] == md5(entry["MessageBody"].encode()), result
    assert result["MD5OfMessageAttributes"] == md5_of_attributes(attributes), result
ok("send-message-batch of 10 with MD5s")

got = aws("receive-message", "--queue-url", work, "--max-number-of-messages", "10",
          "--attribute-names", "All", "--message-attribute-names", "All", "--visibility-timeout", "60")
messages = got["Messages"]
assert len(messages) == 10, len(messages)
for m in messages:
    assert m["MD5OfBody"] == md5(m["Body"].encode()), m
    assert m["Body"].startswith("query message ") and m["Body"].endswith("\u00e9 & <x>\r\n"), repr(m["Body"])
    assert m["MessageAttributes"] == attributes, m["MessageAttributes"]
    assert m["MD5OfMessageAttributes"] == md5_of_attributes(attributes)
    assert m["Attributes"]["ApproximateReceiveCount"] == "1", m
ok("receive-message of 10 with attributes and MD5s")

aws("change-message-visibility", "--queue-url", work, "--receipt-handle",
    messages[0]["ReceiptHandle"], "--visibility-timeout", "0")
again = aws("receive-message", "--queue-url", work, "--attribute-names", "ApproximateReceiveCount")["Messages"]
assert again[0]["Body"] == messages[0]["Body"] and again[0]["Attributes"]["ApproximateReceiveCount"] == "2", again
ok("change-message-visibility, redelivered with ApproximateReceiveCount 2")

handles = [{"Id": f"d{i}", "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages[1:9])]
handles.append({"Id": "again", "ReceiptHandle": again[0]["ReceiptHandle"]})
handles.append({"Id": "stale", "ReceiptHandle": messages[0]["ReceiptHandle"]})
deleted = aws("delete-message-batch", "--queue-url", work, "--entries", json.dumps(handles))
assert len(deleted["Successful"]) == 9, deleted
assert deleted["Failed"][0]["Id"] == "stale" and deleted["Failed"][0]["Code"] == "ReceiptHandleIsInvalid", deleted
aws("delete-message", "--queue-url", work, "--receipt-handle", messages[9]["ReceiptHandle"])
assert "Messages" not in aws("receive-message", "--queue-url", work)
ok("delete-message-batch, a stale handle fails alone")

argv, e = command(["receive-message", "--queue-url", work, "--wait-time-seconds", "20"])
poller = subprocess.Popen(argv, env=e, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
aws("send-message", "--queue-url", work, "--message-body", "wake up")
out, err = poller.communicate(timeout=60)
assert poller.returncode == 0, err
woke = json.loads(out)["Messages"]
assert [m["Body"] for m in woke] == ["wake up"], woke
ok("a long poll returns the message sent while it waits")

aws("send-message", "--queue-url", work, "--message-body", "later", "--delay-seconds", "600")
attrs = aws("get-queue-attributes", "--queue-url", work, "--attribute-names", "All")["Attributes"]
assert attrs["ApproximateNumberOfMessagesNotVisible"] == "1", attrs
assert attrs["ApproximateNumberOfMessagesDelayed"] == "1", attrs
assert attrs["QueueArn"] == "arn:aws:sqs:us-east-1:000000000000:work", attrs
aws("purge-queue", "--queue-url", work)
attrs = aws("get-queue-attributes", "--queue-url", work, "--attribute-names", "All")["Attributes"]
assert attrs["ApproximateNumberOfMessagesDelayed"] == "0" and attrs["ApproximateNumberOfMessagesNotVisible"] == "0", attrs
ok("get-queue-attributes, purge-queue")

jobs = aws("get-queue-url", "--queue-name", "jobs")["QueueUrl"]
dead = aws("get-queue-url", "--queue-name", "dead")["QueueUrl"]
aws("send-message", "--queue-url", jobs, "--message-body", "poison")
for count in ("1", "2"):
    m = aws("receive-message", "--queue-url", jobs, "--visibility-timeout", "0", "--attribute-names", "All")["Messages"]
    assert m[0]["Attributes"]["ApproximateReceiveCount"] == count, m
assert "Messages" not in aws("receive-message", "--queue-url", jobs)
moved = aws("receive-message", "--queue-url", dead, "--wait-time-seconds", "20")["Messages"]
assert [m["Body"] for m in moved] == ["poison"], moved
aws("delete-message", "--queue-url", dead, "--receipt-handle", moved[0]["ReceiptHandle"])
ok("dead-lettering after maxReceiveCount")

for args in [
    ("receive-message", "--queue-url", work),
    ("send-message", "--queue-url", work, "--message-body", "x"),
    ("purge-queue", "--queue-url", work),
    ("get-queue-attributes", "--queue-url", work),
    ("get-queue-url", "--queue-name", "work"),
    ("delete-message", "--queue-url", work, "--receipt-handle", "x"),
]:
    stderr = aws_error(*args, key_id=LIMITED_ID, secret=LIMITED_SECRET)
    assert "AccessDenied" in stderr, (args, stderr)
stderr = aws_error("list-queues", key_id=KEY_ID, secret="wrong" + SECRET[5:])
assert "SignatureDoesNotMatch" in stderr, stderr
ok("refused without a grant or with a wrong secret")
print("all awscli checks passed", flush=True)
