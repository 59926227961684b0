"""Large objects through the S3 endpoint, which streams them to and from
object storage: `put FILE` sends FILE as one PutObject and as a multipart
upload of three parts, checks the ETags (the MD5 of the bytes, and of the
parts' MD5s with `-3`) and ranges across the object; `get FILE` reads the
PutObject's object whole as it arrives, its MD5 and length the file's;
`copy FILE` copies it with CopyObject and into a multipart upload of two
UploadPartCopy ranges, checking each ETag against the file's bytes and
ranges across the copies; `cut` reads `whole` after the test cut its blob
short, which must fail rather than end as if whole; `refused` sends a body whose Content-MD5 is wrong
and one past the bucket's limit, both refused with nothing stored."""

import base64
import hashlib
import os
import sys

import botocore.exceptions

from s3_common import client, code, done

s3 = client()
B = "big"


def md5_of(path, first=0, end=None):
    """The MD5 of the file's bytes from `first` up to `end` (its end if
    None), read a block at a time."""
    md5 = hashlib.md5()
    with open(path, "rb") as f:
        f.seek(first)
        left = (end if end is not None else os.path.getsize(path)) - first
        while left > 0:
            block = f.read(min(left, 1 << 20))
            assert block, "the file ended early"
            md5.update(block)
            left -= len(block)
    return md5


def ranges_match(key, path, size):
    """A few ranges of the object, part boundaries included, are the file's,
    with their Content-Range."""
    with open(path, "rb") as f:
        third = size // 3
        for first, last in [(0, 1 << 20), (third - 7, third + 9), (size - 4096, size - 1)]:
            f.seek(first)
            want = f.read(last - first + 1)
            got = s3.get_object(Bucket=B, Key=key, Range=f"bytes={first}-{last}")
            assert got["ContentRange"] == f"bytes {first}-{last}/{size}", got["ContentRange"]
            assert got["Body"].read() == want, (key, first, last)


def completed(key, uid, parts, digests, path, size):
    """Completes upload `uid` of `key` from `parts`, whose MD5s are `digests`,
    and checks the object is the file: its multipart ETag, size and ranges."""
    done_upload = s3.complete_multipart_upload(
        Bucket=B, Key=key, UploadId=uid, MultipartUpload={"Parts": parts}
    )
    want = '"%s-%d"' % (hashlib.md5(b"".join(digests)).hexdigest(), len(parts))
    assert done_upload["ETag"] == want, done_upload["ETag"]
    assert s3.head_object(Bucket=B, Key=key)["ContentLength"] == size
    ranges_match(key, path, size)


if sys.argv[1] == "put":
    path = sys.argv[2]
    size = os.path.getsize(path)
    md5 = md5_of(path)
    with open(path, "rb") as f:
        put = s3.put_object(Bucket=B, Key="whole", Body=f)
    assert put["ETag"] == '"%s"' % md5.hexdigest(), put["ETag"]
    assert s3.head_object(Bucket=B, Key="whole")["ContentLength"] == size
    ranges_match("whole", path, size)

    uid = s3.create_multipart_upload(Bucket=B, Key="parts")["UploadId"]
    part = size // 3
    parts, digests = [], []
    with open(path, "rb") as f:
        for number in (1, 2, 3):
            data = f.read(part if number < 3 else size)
            digests.append(hashlib.md5(data).digest())
            sent = s3.upload_part(Bucket=B, Key="parts", UploadId=uid, PartNumber=number, Body=data)
            del data
            assert sent["ETag"] == '"%s"' % digests[-1].hex(), sent["ETag"]
            parts.append({"PartNumber": number, "ETag": sent["ETag"]})
    completed("parts", uid, parts, digests, path, size)
elif sys.argv[1] == "get":
    path = sys.argv[2]
    size = os.path.getsize(path)
    got = s3.get_object(Bucket=B, Key="whole")
    assert got["ContentLength"] == size, got["ContentLength"]
    md5, read = hashlib.md5(), 0
    for chunk in got["Body"].iter_chunks(1 << 20):
        md5.update(chunk)
        read += len(chunk)
    assert read == size, read
    assert md5.hexdigest() == md5_of(path).hexdigest()
    # Most of the object, from an odd offset: the bytes streamed for a range.
    first, last = 12345, size - 54321
    got = s3.get_object(Bucket=B, Key="whole", Range=f"bytes={first}-{last}")
    assert got["ContentRange"] == f"bytes {first}-{last}/{size}", got["ContentRange"]
    assert got["ContentLength"] == last - first + 1, got["ContentLength"]
    md5 = hashlib.md5()
    for chunk in got["Body"].iter_chunks(1 << 20):
        md5.update(chunk)
    assert md5.hexdigest() == md5_of(path, first, last + 1).hexdigest()
elif sys.argv[1] == "copy":
    path = sys.argv[2]
    size = os.path.getsize(path)
    source = {"Bucket": B, "Key": "whole"}
    copied = s3.copy_object(Bucket=B, Key="copy", CopySource=source)
    want = '"%s"' % md5_of(path).hexdigest()
    assert copied["CopyObjectResult"]["ETag"] == want, copied
    assert s3.head_object(Bucket=B, Key="copy")["ContentLength"] == size
    ranges_match("copy", path, size)

    uid = s3.create_multipart_upload(Bucket=B, Key="copied-parts")["UploadId"]
    half = size // 2
    parts, digests = [], []
    for number, (first, end) in enumerate([(0, half), (half, size)], start=1):
        sent = s3.upload_part_copy(
            Bucket=B,
            Key="copied-parts",
            UploadId=uid,
            PartNumber=number,
            CopySource=source,
            CopySourceRange=f"bytes={first}-{end - 1}",
        )
        digests.append(md5_of(path, first, end).digest())
        assert sent["CopyPartResult"]["ETag"] == '"%s"' % digests[-1].hex(), sent
        parts.append({"PartNumber": number, "ETag": sent["CopyPartResult"]["ETag"]})
    completed("copied-parts", uid, parts, digests, path, size)
elif sys.argv[1] == "cut":
    got = s3.get_object(Bucket=B, Key="whole")
    try:
        got["Body"].read()
    except botocore.exceptions.BotoCoreError:
        pass
    else:
        raise AssertionError("a body cut short read as whole")
else:
    body = os.urandom(3 << 20)
    wrong = base64.b64encode(hashlib.md5(b"other").digest()).decode()
    assert code(s3.put_object, Bucket=B, Key="bad-md5", Body=body, ContentMD5=wrong) == "BadDigest"
    assert code(s3.head_object, Bucket=B, Key="bad-md5") == "404"
    # `tiny` holds 1 MiB: a 3 MiB body is refused as it streams.
    assert code(s3.put_object, Bucket="tiny", Key="over", Body=body) == "EntityTooLarge"
    assert code(s3.head_object, Bucket="tiny", Key="over") == "404"
done()
