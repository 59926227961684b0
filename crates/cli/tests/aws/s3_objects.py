"""Objects through boto3 with a key that may read and write `photos` (and
write `small`, whose objects are at most 1 KiB): put,
get (ranged too), head, delete, metadata, listings in pages with
delimiters, copy, delete_objects, multipart, checksums, presigned URLs,
and the errors SDKs map to exceptions."""

import base64
import hashlib
import os
import time
import urllib3

from s3_common import VERIFY, client, code, done, signed, signed_at

s3 = client()
B = "photos"
http = urllib3.PoolManager(ca_certs=VERIFY) if VERIFY else urllib3.PoolManager()

# Only the buckets the key has a grant on.
assert [b["Name"] for b in s3.list_buckets()["Buckets"]] == [B, "small"]
s3.head_bucket(Bucket=B)

# Put, get, ranged get, head; metadata and content type round-trip; the
# ETag is the body's MD5.
body = b"hello, nimbus s3"
put = s3.put_object(
    Bucket=B, Key="docs/a.txt", Body=body, ContentType="text/plain", Metadata={"Owner": "ada"}
)
assert put["ETag"] == '"%s"' % hashlib.md5(body).hexdigest(), put
got = s3.get_object(Bucket=B, Key="docs/a.txt")
assert got["Body"].read() == body
assert got["ContentType"] == "text/plain"
assert got["Metadata"] == {"owner": "ada"}, got["Metadata"]
assert got["ETag"] == put["ETag"]
part = s3.get_object(Bucket=B, Key="docs/a.txt", Range="bytes=7-11")
assert part["Body"].read() == b"nimbu"
assert part["ContentRange"] == "bytes 7-11/%d" % len(body), part["ContentRange"]
assert part["ResponseMetadata"]["HTTPStatusCode"] == 206
tail = s3.get_object(Bucket=B, Key="docs/a.txt", Range="bytes=-2")
assert tail["Body"].read() == b"s3"
assert code(s3.get_object, Bucket=B, Key="docs/a.txt", Range="bytes=100-200") == "InvalidRange"
head = s3.head_object(Bucket=B, Key="docs/a.txt")
assert head["ContentLength"] == len(body) and head["ETag"] == put["ETag"]
assert head["Metadata"] == {"owner": "ada"}
assert s3.get_object_tagging(Bucket=B, Key="docs/a.txt")["TagSet"] == []

# Errors as SDKs know them.
assert code(s3.get_object, Bucket=B, Key="docs/none") == "NoSuchKey"
assert code(s3.head_object, Bucket=B, Key="docs/none") == "404"
assert code(s3.put_object, Bucket="small", Key="big", Body=b"x" * 1025) == "EntityTooLarge"
s3.put_object(Bucket="small", Key="fits", Body=b"x" * 1024)
assert code(s3.put_object, Bucket=B, Key="a/../b", Body=b"x") == "InvalidArgument"
assert code(s3.put_object, Bucket=B, Key="k" * 1025, Body=b"x") in ("KeyTooLongError", "KeyTooLong")

# Listings: pages of one, with a delimiter, after a key, URL-encoded names.
for key in ["docs/b.txt", "docs/c d.txt", "img/1.png", "img/2.png", "top.txt"]:
    s3.put_object(Bucket=B, Key=key, Body=key.encode())
keys, prefixes, pages = [], [], 0
for page in s3.get_paginator("list_objects_v2").paginate(
    Bucket=B, Delimiter="/", PaginationConfig={"PageSize": 1}
):
    pages += 1
    assert page["KeyCount"] <= 1, page
    keys += [o["Key"] for o in page.get("Contents", [])]
    prefixes += [p["Prefix"] for p in page.get("CommonPrefixes", [])]
assert prefixes == ["docs/", "img/"], prefixes
assert keys == ["top.txt"], keys
assert pages == 3, pages
listed = []
for page in s3.get_paginator("list_objects_v2").paginate(
    Bucket=B, Prefix="docs/", PaginationConfig={"PageSize": 1}
):
    listed += [o["Key"] for o in page.get("Contents", [])]
assert listed == ["docs/a.txt", "docs/b.txt", "docs/c d.txt"], listed
after = s3.list_objects_v2(Bucket=B, Prefix="img/", StartAfter="img/1.png")
assert [o["Key"] for o in after["Contents"]] == ["img/2.png"]
# boto3 asks for encoding-type=url and decodes; the raw answer is encoded.
status, xml = signed("GET", "/" + B, query="list-type=2&prefix=docs%2Fc&encoding-type=url")
assert status == 200 and "<Key>docs/c%20d.txt</Key>" in xml, xml
v1 = s3.list_objects(Bucket=B, Prefix="img/", MaxKeys=1)
assert [o["Key"] for o in v1["Contents"]] == ["img/1.png"] and v1["IsTruncated"]

# Copy (metadata copied, or replaced), then delete one and many.
copied = s3.copy_object(Bucket=B, Key="docs/copy.txt", CopySource={"Bucket": B, "Key": "docs/a.txt"})
assert copied["CopyObjectResult"]["ETag"] == put["ETag"]
assert s3.head_object(Bucket=B, Key="docs/copy.txt")["Metadata"] == {"owner": "ada"}
s3.copy_object(
    Bucket=B, Key="docs/copy2.txt", CopySource=f"{B}/docs/a.txt",
    MetadataDirective="REPLACE", Metadata={"k": "v"}, ContentType="text/x",
)
replaced = s3.head_object(Bucket=B, Key="docs/copy2.txt")
assert replaced["Metadata"] == {"k": "v"} and replaced["ContentType"] == "text/x"
assert code(s3.copy_object, Bucket=B, Key="x", CopySource=f"{B}/docs/none") == "NoSuchKey"
s3.delete_object(Bucket=B, Key="docs/copy2.txt")
assert code(s3.head_object, Bucket=B, Key="docs/copy2.txt") == "404"
s3.delete_object(Bucket=B, Key="docs/never-there")
deleted = s3.delete_objects(
    Bucket=B, Delete={"Objects": [{"Key": "img/1.png"}, {"Key": "img/2.png"}, {"Key": "nope"}]}
)
assert sorted(d["Key"] for d in deleted["Deleted"]) == ["img/1.png", "img/2.png", "nope"]
assert "Errors" not in deleted or deleted["Errors"] == []
quiet = s3.delete_objects(Bucket=B, Delete={"Objects": [{"Key": "top.txt"}], "Quiet": True})
assert not quiet.get("Deleted"), quiet
assert code(s3.head_object, Bucket=B, Key="top.txt") == "404"

# Checksums SDKs send: checked, echoed; a wrong one refused.
# (CRC32C needs botocore[crt], which is not installed.)
for algorithm in ["CRC32", "SHA256", "SHA1"]:
    r = s3.put_object(Bucket=B, Key="sum/" + algorithm, Body=b"checked", ChecksumAlgorithm=algorithm)
    assert r.get("Checksum" + algorithm), (algorithm, r)
wrong = base64.b64encode(b"\0\0\0\0").decode()
assert code(s3.put_object, Bucket=B, Key="sum/bad", Body=b"checked", ChecksumCRC32=wrong) == "BadDigest"
assert code(s3.put_object, Bucket=B, Key="sum/bad", Body=b"x", ContentMD5=base64.b64encode(hashlib.md5(b"y").digest()).decode()) == "BadDigest"
assert code(s3.head_object, Bucket=B, Key="sum/bad") == "404"

# Multipart: parts, a listing of them, completion with S3's ETag.
mib5 = os.urandom(5 * 1024 * 1024)
last = b"the end"
up = s3.create_multipart_upload(Bucket=B, Key="multi/obj", ContentType="application/x-test", Metadata={"m": "1"})
uid = up["UploadId"]
p1 = s3.upload_part(Bucket=B, Key="multi/obj", UploadId=uid, PartNumber=1, Body=mib5)
p2 = s3.upload_part(Bucket=B, Key="multi/obj", UploadId=uid, PartNumber=2, Body=last)
parts = s3.list_parts(Bucket=B, Key="multi/obj", UploadId=uid)["Parts"]
assert [(p["PartNumber"], p["Size"]) for p in parts] == [(1, len(mib5)), (2, len(last))], parts
# Not yet visible; a wrong ETag, or a small part before another, refused.
assert code(s3.head_object, Bucket=B, Key="multi/obj") == "404"
assert code(
    s3.complete_multipart_upload, Bucket=B, Key="multi/obj", UploadId=uid,
    MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": '"%s"' % ("0" * 32)}]},
) == "InvalidPart"
assert code(
    s3.complete_multipart_upload, Bucket=B, Key="multi/obj", UploadId=uid,
    MultipartUpload={"Parts": [{"PartNumber": 2, "ETag": p2["ETag"]}, {"PartNumber": 1, "ETag": p1["ETag"]}]},
) == "InvalidPartOrder"
done_mp = s3.complete_multipart_upload(
    Bucket=B, Key="multi/obj", UploadId=uid,
    MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": p1["ETag"]}, {"PartNumber": 2, "ETag": p2["ETag"]}]},
)
digests = hashlib.md5(hashlib.md5(mib5).digest() + hashlib.md5(last).digest()).hexdigest()
assert done_mp["ETag"] == '"%s-2"' % digests, done_mp
whole = s3.get_object(Bucket=B, Key="multi/obj")
assert whole["Body"].read() == mib5 + last
assert whole["ETag"] == done_mp["ETag"] and whole["ContentType"] == "application/x-test"
assert whole["Metadata"] == {"m": "1"}
assert code(s3.list_parts, Bucket=B, Key="multi/obj", UploadId=uid) == "NoSuchUpload"
aborted = s3.create_multipart_upload(Bucket=B, Key="multi/gone")["UploadId"]
s3.upload_part(Bucket=B, Key="multi/gone", UploadId=aborted, PartNumber=1, Body=b"x")
s3.abort_multipart_upload(Bucket=B, Key="multi/gone", UploadId=aborted)
assert code(s3.upload_part, Bucket=B, Key="multi/gone", UploadId=aborted, PartNumber=2, Body=b"y") == "NoSuchUpload"
assert code(s3.list_parts, Bucket=B, Key="multi/obj", UploadId="../../etc") == "NoSuchUpload"

# Malformed XML: the S3 error, and the server serves on.
status, xml = signed("POST", "/" + B, body=b"<Delete><Object><Key>a", query="delete")
assert status == 400 and "<Code>MalformedXML</Code>" in xml, (status, xml)
uid = s3.create_multipart_upload(Bucket=B, Key="multi/bad")["UploadId"]
status, xml = signed("POST", "/" + B + "/multi/bad", body=b"<CompleteMultipartUpload><Part>", query="uploadId=" + uid)
assert status == 400 and "<Code>MalformedXML</Code>" in xml, (status, xml)
s3.abort_multipart_upload(Bucket=B, Key="multi/bad", UploadId=uid)
assert s3.get_object(Bucket=B, Key="docs/a.txt")["Body"].read() == body

# Presigned GET and PUT; expired and wrong-secret ones refused.
url = s3.generate_presigned_url("get_object", Params={"Bucket": B, "Key": "docs/a.txt"}, ExpiresIn=60)
r = http.request("GET", url, retries=False)
assert r.status == 200 and r.data == body, r.status
url = s3.generate_presigned_url("put_object", Params={"Bucket": B, "Key": "docs/presigned"}, ExpiresIn=60)
r = http.request("PUT", url, body=b"via a presigned url", retries=False)
assert r.status == 200, (r.status, r.data)
assert s3.get_object(Bucket=B, Key="docs/presigned")["Body"].read() == b"via a presigned url"
expired = signed_at(
    time.time() - 120,
    lambda: s3.generate_presigned_url("get_object", Params={"Bucket": B, "Key": "docs/a.txt"}, ExpiresIn=60),
)
r = http.request("GET", expired, retries=False)
assert r.status == 403 and b"<Code>AccessDenied</Code>" in r.data and b"expired" in r.data, r.data
forged = client(secret="x" * 40).generate_presigned_url(
    "put_object", Params={"Bucket": B, "Key": "docs/forged"}, ExpiresIn=60
)
r = http.request("PUT", forged, body=b"no", retries=False)
assert r.status == 403 and b"<Code>SignatureDoesNotMatch</Code>" in r.data, r.data
assert code(s3.head_object, Bucket=B, Key="docs/forged") == "404"

# The uploader's trace context reaches the object's event.
traced = client()
traced.meta.events.register(
    "before-sign.s3.PutObject",
    lambda request, **_: request.headers.add_header(
        "traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    ),
)
traced.put_object(Bucket=B, Key="trace/one", Body=b"traced")

done()
