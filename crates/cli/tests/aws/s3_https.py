"""Over HTTPS boto3 sends bodies `aws-chunked` with the checksum in a
trailer (STREAMING-UNSIGNED-PAYLOAD-TRAILER): puts and parts that way are
checked and stored; a trailer that does not match the body is refused."""

import hashlib
import os

from s3_common import client, code, done, signed

s3 = client()
B = "photos"
sent = []
s3.meta.events.register(
    "before-send.s3.*", lambda request, **_: sent.append(dict(request.headers))
)


def streamed_with_trailer():
    headers = {k.lower(): (v.decode() if isinstance(v, bytes) else v) for k, v in sent[-1].items()}
    return (
        headers.get("x-amz-content-sha256") == "STREAMING-UNSIGNED-PAYLOAD-TRAILER"
        and headers.get("x-amz-trailer") == "x-amz-checksum-crc32"
    )


body = os.urandom(300 * 1024)
put = s3.put_object(Bucket=B, Key="tls/one", Body=body)
assert streamed_with_trailer(), sent[-1]
assert put["ETag"] == '"%s"' % hashlib.md5(body).hexdigest() and put.get("ChecksumCRC32"), put
assert s3.get_object(Bucket=B, Key="tls/one")["Body"].read() == body

part = os.urandom(5 * 1024 * 1024)
uid = s3.create_multipart_upload(Bucket=B, Key="tls/multi", ChecksumAlgorithm="CRC32")["UploadId"]
p1 = s3.upload_part(Bucket=B, Key="tls/multi", UploadId=uid, PartNumber=1, Body=part, ChecksumAlgorithm="CRC32")
assert streamed_with_trailer(), sent[-1]
p2 = s3.upload_part(Bucket=B, Key="tls/multi", UploadId=uid, PartNumber=2, Body=b"end", ChecksumAlgorithm="CRC32")
s3.complete_multipart_upload(
    Bucket=B, Key="tls/multi", UploadId=uid,
    MultipartUpload={"Parts": [
        {"PartNumber": 1, "ETag": p1["ETag"], "ChecksumCRC32": p1["ChecksumCRC32"]},
        {"PartNumber": 2, "ETag": p2["ETag"], "ChecksumCRC32": p2["ChecksumCRC32"]},
    ]},
)
assert s3.get_object(Bucket=B, Key="tls/multi")["Body"].read() == part + b"end"

# A trailer whose checksum is not the body's: BadDigest, nothing stored.
chunked = b"5\r\nhello\r\n0\r\nx-amz-checksum-crc32:AAAAAA==\r\n\r\n"
status, xml = signed(
    "PUT", "/" + B + "/tls/bad", body=chunked,
    headers={
        "x-amz-content-sha256": "STREAMING-UNSIGNED-PAYLOAD-TRAILER",
        "x-amz-trailer": "x-amz-checksum-crc32",
        "x-amz-decoded-content-length": "5",
        "content-encoding": "aws-chunked",
    },
)
assert status == 400 and "<Code>BadDigest</Code>" in xml, (status, xml)
assert code(s3.head_object, Bucket=B, Key="tls/bad") == "404"
# The same with the right checksum is stored.
good = b"5\r\nhello\r\n0\r\nx-amz-checksum-crc32:NhCmhg==\r\n\r\n"
status, xml = signed(
    "PUT", "/" + B + "/tls/good", body=good,
    headers={
        "x-amz-content-sha256": "STREAMING-UNSIGNED-PAYLOAD-TRAILER",
        "x-amz-trailer": "x-amz-checksum-crc32",
        "x-amz-decoded-content-length": "5",
        "content-encoding": "aws-chunked",
    },
)
assert status == 200, (status, xml)
assert s3.get_object(Bucket=B, Key="tls/good")["Body"].read() == b"hello"

done()
