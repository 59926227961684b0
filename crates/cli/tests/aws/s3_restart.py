"""A multipart upload across a server restart: `begin` uploads a part and
prints the upload id; `finish ID` (after the restart) uploads the last
part, finds the first still listed and completes the object."""

import hashlib
import sys

from s3_common import client, done

s3 = client()
B, KEY = "photos", "restart/obj"
FIRST = bytes(range(256)) * (5 * 1024 * 1024 // 256)

if sys.argv[1] == "begin":
    uid = s3.create_multipart_upload(Bucket=B, Key=KEY)["UploadId"]
    s3.upload_part(Bucket=B, Key=KEY, UploadId=uid, PartNumber=1, Body=FIRST)
    print(uid)
else:
    uid = sys.argv[2]
    parts = s3.list_parts(Bucket=B, Key=KEY, UploadId=uid)["Parts"]
    assert [(p["PartNumber"], p["Size"]) for p in parts] == [(1, len(FIRST))], parts
    assert parts[0]["ETag"] == '"%s"' % hashlib.md5(FIRST).hexdigest()
    last = s3.upload_part(Bucket=B, Key=KEY, UploadId=uid, PartNumber=2, Body=b"after")
    s3.complete_multipart_upload(
        Bucket=B, Key=KEY, UploadId=uid,
        MultipartUpload={"Parts": [
            {"PartNumber": 1, "ETag": parts[0]["ETag"]},
            {"PartNumber": 2, "ETag": last["ETag"]},
        ]},
    )
    assert s3.get_object(Bucket=B, Key=KEY)["Body"].read() == FIRST + b"after"
done()
