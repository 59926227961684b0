"""Large uploads through the S3 endpoint, which streams them to object
storage: `put FILE` sends FILE as one PutObject and as a multipart upload
of three parts, checks the ETags (the MD5 of the bytes, and of the parts'
MD5s with `-3`) and ranges across the object; `refused` sends a body whose
Content-MD5 is wrong and one past the bucket's limit, both refused with
nothing stored."""

import base64
import hashlib
import os
import sys

from s3_common import client, code, done

s3 = client()
B = "big"


def ranges_match(key, path, size):
    """A few ranges of the object, part boundaries included, are the file's."""
    with open(path, "rb") as f:
        third = size // 3
        for first, last in [(0, 1 << 20), (third - 7, third + 9), (size - 4096, size - 1)]:
            f.seek(first)
            want = f.read(last - first + 1)
            got = s3.get_object(Bucket=B, Key=key, Range=f"bytes={first}-{last}")["Body"].read()
            assert got == want, (key, first, last)


if sys.argv[1] == "put":
    path = sys.argv[2]
    size = os.path.getsize(path)
    md5 = hashlib.md5()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            md5.update(block)
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
    done_upload = s3.complete_multipart_upload(
        Bucket=B, Key="parts", UploadId=uid, MultipartUpload={"Parts": parts}
    )
    want = '"%s-3"' % hashlib.md5(b"".join(digests)).hexdigest()
    assert done_upload["ETag"] == want, done_upload["ETag"]
    assert s3.head_object(Bucket=B, Key="parts")["ContentLength"] == size
    ranges_match("parts", path, size)
else:
    body = os.urandom(3 << 20)
    wrong = base64.b64encode(hashlib.md5(b"other").digest()).decode()
    assert code(s3.put_object, Bucket=B, Key="bad-md5", Body=body, ContentMD5=wrong) == "BadDigest"
    assert code(s3.head_object, Bucket=B, Key="bad-md5") == "404"
    # `tiny` holds 1 MiB: a 3 MiB body is refused as it streams.
    assert code(s3.put_object, Bucket="tiny", Key="over", Body=body) == "EntityTooLarge"
    assert code(s3.head_object, Bucket="tiny", Key="over") == "404"
done()
