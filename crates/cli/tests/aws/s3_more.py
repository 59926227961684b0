"""Through boto3, with a key that may read and write `photos`: uploads in
progress listed (prefix, delimiter, pages by key and upload id markers),
If-Modified-Since and If-Unmodified-Since on GET, HEAD and CopyObject, and
the checksums of an upload (CRC32, CRC32C, SHA-1, SHA-256) kept and given
back when asked for with ChecksumMode, which boto3 then checks."""

import base64
import datetime
import hashlib
import zlib

from s3_common import client, code, done, signed

try:
    import awscrt  # noqa: F401  (boto3 computes CRC32C with it)
except ImportError:
    raise SystemExit(
        "CRC32C needs awscrt: python3 -m pip install awscrt==0.32.2 (see .ci/run)"
    )

s3 = client()
B = "photos"

# --- ListMultipartUploads
begun = {}
for key in ["up/b", "up/a", "up/dir/x", "up/dir/y", "up/a", "else/z"]:
    begun.setdefault(key, []).append(
        s3.create_multipart_upload(Bucket=B, Key=key)["UploadId"]
    )
# By key, then by upload id (UUIDv7: the time it began first).
expected = sorted((k, i) for k in begun if k.startswith("up/") for i in begun[k])
first_a, second_a = sorted(begun["up/a"])
listed = s3.list_multipart_uploads(Bucket=B, Prefix="up/")
assert [(u["Key"], u["UploadId"]) for u in listed["Uploads"]] == expected, listed
assert not listed["IsTruncated"]
assert all(u["Initiated"].year >= 2024 for u in listed["Uploads"])
# Pages of one: boto3 follows NextKeyMarker and NextUploadIdMarker, and
# the two uploads of one key are split across pages.
paged = []
for page in s3.get_paginator("list_multipart_uploads").paginate(
    Bucket=B, Prefix="up/", PaginationConfig={"PageSize": 1}
):
    assert len(page.get("Uploads", [])) <= 1, page
    paged += [(u["Key"], u["UploadId"]) for u in page.get("Uploads", [])]
assert paged == expected, paged
first = s3.list_multipart_uploads(Bucket=B, Prefix="up/", MaxUploads=1)
assert first["IsTruncated"] and first["NextKeyMarker"] == "up/a", first
assert first["NextUploadIdMarker"] == first_a
rest = s3.list_multipart_uploads(
    Bucket=B, Prefix="up/", KeyMarker="up/a", UploadIdMarker=first_a
)
assert [u["UploadId"] for u in rest["Uploads"]][0] == second_a, rest
after_key = s3.list_multipart_uploads(Bucket=B, Prefix="up/", KeyMarker="up/a")
assert [u["Key"] for u in after_key["Uploads"]] == ["up/b", "up/dir/x", "up/dir/y"]
# A delimiter folds a folder into a common prefix.
folded = s3.list_multipart_uploads(Bucket=B, Prefix="up/", Delimiter="/")
assert [p["Prefix"] for p in folded["CommonPrefixes"]] == ["up/dir/"], folded
assert [u["Key"] for u in folded["Uploads"]] == ["up/a", "up/a", "up/b"]
# Completed and aborted uploads are gone from the listing.
for key, ids in begun.items():
    for upload_id in ids:
        s3.abort_multipart_upload(Bucket=B, Key=key, UploadId=upload_id)
assert "Uploads" not in s3.list_multipart_uploads(Bucket=B) or not s3.list_multipart_uploads(
    Bucket=B
)["Uploads"]
# A bucket without a grant: refused before anything is looked up.
assert code(s3.list_multipart_uploads, Bucket="nope") == "AccessDenied"

# --- If-Modified-Since and If-Unmodified-Since
s3.put_object(Bucket=B, Key="dated", Body=b"dated")
modified = s3.head_object(Bucket=B, Key="dated")["LastModified"]
before = modified - datetime.timedelta(hours=1)
later = modified + datetime.timedelta(hours=1)
got = s3.get_object(Bucket=B, Key="dated", IfModifiedSince=before)
assert got["Body"].read() == b"dated"
assert code(s3.get_object, Bucket=B, Key="dated", IfModifiedSince=modified) == "304"
assert code(s3.get_object, Bucket=B, Key="dated", IfModifiedSince=later) == "304"
assert code(s3.head_object, Bucket=B, Key="dated", IfModifiedSince=later) == "304"
s3.head_object(Bucket=B, Key="dated", IfModifiedSince=before)
s3.get_object(Bucket=B, Key="dated", IfUnmodifiedSince=modified)
assert code(s3.get_object, Bucket=B, Key="dated", IfUnmodifiedSince=before) == "PreconditionFailed"
assert code(s3.head_object, Bucket=B, Key="dated", IfUnmodifiedSince=before) == "412"
# The ETag conditions outweigh the dates, as S3 (RFC 9110) has it.
etag = s3.head_object(Bucket=B, Key="dated")["ETag"]
s3.get_object(Bucket=B, Key="dated", IfMatch=etag, IfUnmodifiedSince=before)
s3.get_object(Bucket=B, Key="dated", IfNoneMatch='"other"', IfModifiedSince=later)
# CopyObject's source conditions: each failure is 412.
s3.copy_object(
    Bucket=B, Key="dated-copy", CopySource=f"{B}/dated", CopySourceIfModifiedSince=before
)
for condition in [
    {"CopySourceIfModifiedSince": later},
    {"CopySourceIfUnmodifiedSince": before},
]:
    assert code(
        s3.copy_object, Bucket=B, Key="dated-refused", CopySource=f"{B}/dated", **condition
    ) == "PreconditionFailed", condition
assert code(s3.head_object, Bucket=B, Key="dated-refused") == "404"

# --- Checksums kept with the object, given back with ChecksumMode
body = b"a body whose checksums are kept"
crc32 = base64.b64encode(zlib.crc32(body).to_bytes(4, "big")).decode()
sha256 = base64.b64encode(hashlib.sha256(body).digest()).decode()
for algorithm in ["CRC32", "CRC32C", "SHA1", "SHA256"]:
    key = "kept/" + algorithm
    put = s3.put_object(Bucket=B, Key=key, Body=body, ChecksumAlgorithm=algorithm)
    given = put["Checksum" + algorithm]
    got = s3.get_object(Bucket=B, Key=key, ChecksumMode="ENABLED")
    # boto3 checks the body against the checksum as it reads it.
    assert got["Body"].read() == body
    assert got["Checksum" + algorithm] == given, (algorithm, got)
    head = s3.head_object(Bucket=B, Key=key, ChecksumMode="ENABLED")
    assert head["Checksum" + algorithm] == given, (algorithm, head)
    # Not asked for: not given.
    plain = s3.head_object(Bucket=B, Key=key)
    assert "Checksum" + algorithm not in plain, plain
    # Nor as user metadata.
    assert plain.get("Metadata", {}) == {}, plain
assert s3.head_object(Bucket=B, Key="kept/CRC32", ChecksumMode="ENABLED")["ChecksumCRC32"] == crc32
assert s3.head_object(Bucket=B, Key="kept/SHA256", ChecksumMode="ENABLED")["ChecksumSHA256"] == sha256
# A range has no checksum of its own: none is given.
part = s3.get_object(Bucket=B, Key="kept/CRC32", Range="bytes=0-3", ChecksumMode="ENABLED")
assert part["Body"].read() == body[:4] and "ChecksumCRC32" not in part, part
# A CRC32C checked on its way in through a raw request is kept too.
crc32c = s3.head_object(Bucket=B, Key="kept/CRC32C", ChecksumMode="ENABLED")["ChecksumCRC32C"]
status, text = signed(
    "PUT", f"/{B}/kept/raw", body=body, headers={"x-amz-checksum-crc32c": crc32c}
)
assert status == 200, (status, text)
raw = s3.get_object(Bucket=B, Key="kept/raw", ChecksumMode="ENABLED")
assert raw["ChecksumCRC32C"] == crc32c and raw["Body"].read() == body
# A wrong CRC32C is refused and nothing is stored.
wrong = base64.b64encode(b"\0\0\0\0").decode()
assert code(s3.put_object, Bucket=B, Key="kept/bad", Body=body, ChecksumCRC32C=wrong) == "BadDigest"
assert code(s3.head_object, Bucket=B, Key="kept/bad") == "404"

done()
