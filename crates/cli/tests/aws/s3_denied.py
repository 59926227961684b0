"""Every S3 operation refused without a grant. The key in the environment
may read `other` and write `photos/inbox/` only; the owner's key (OWNER_*)
first makes `photos/secret.txt` and an upload to `photos/up`."""

import os
import time

from s3_common import client, code, done, signed, signed_at

s3 = client()
B = "photos"
DENIED = "AccessDenied"
owner = client(key_id=os.environ["OWNER_ACCESS_KEY_ID"], secret=os.environ["OWNER_SECRET_ACCESS_KEY"])
owner.put_object(Bucket=B, Key="secret.txt", Body=b"not for you")
upload = owner.create_multipart_upload(Bucket=B, Key="up")["UploadId"]

# It sees only the buckets it has a grant on.
assert [b["Name"] for b in s3.list_buckets()["Buckets"]] == ["other", "photos"]
assert code(s3.head_bucket, Bucket="third") == "403"
assert code(s3.list_objects_v2, Bucket="third") == DENIED
assert code(s3.get_bucket_location, Bucket="third") == DENIED

# Reads of photos: none granted.
assert code(s3.get_object, Bucket=B, Key="secret.txt") == DENIED
assert code(s3.head_object, Bucket=B, Key="secret.txt") == "403"
assert code(s3.get_object_tagging, Bucket=B, Key="secret.txt") == DENIED
assert code(s3.list_objects_v2, Bucket=B) == DENIED
assert code(s3.list_objects_v2, Bucket=B, Prefix="inbox/") == DENIED
assert code(s3.list_objects, Bucket=B) == DENIED
# Writes outside the prefix.
assert code(s3.put_object, Bucket=B, Key="secret.txt", Body=b"x") == DENIED
assert code(s3.delete_object, Bucket=B, Key="secret.txt") == DENIED
assert code(s3.create_multipart_upload, Bucket=B, Key="up") == DENIED
assert code(s3.upload_part, Bucket=B, Key="up", UploadId=upload, PartNumber=1, Body=b"x") == DENIED
assert code(s3.list_parts, Bucket=B, Key="up", UploadId=upload) == DENIED
assert code(
    s3.complete_multipart_upload, Bucket=B, Key="up", UploadId=upload,
    MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": '"%s"' % ("0" * 32)}]},
) == DENIED
assert code(s3.abort_multipart_upload, Bucket=B, Key="up", UploadId=upload) == DENIED
# A copy needs a read grant on its source and a write grant on its target.
assert code(s3.copy_object, Bucket=B, Key="inbox/copy", CopySource=f"{B}/secret.txt") == DENIED
assert code(s3.copy_object, Bucket="other", Key="x", CopySource=f"{B}/inbox/x") == DENIED
mine = s3.create_multipart_upload(Bucket=B, Key="inbox/parted")["UploadId"]
assert code(
    s3.upload_part_copy, Bucket=B, Key="inbox/parted", UploadId=mine, PartNumber=1,
    CopySource=f"{B}/secret.txt",
) == DENIED
s3.abort_multipart_upload(Bucket=B, Key="inbox/parted", UploadId=mine)
# Batch deletion: each key refused on its own.
answer = s3.delete_objects(Bucket=B, Delete={"Objects": [{"Key": "secret.txt"}, {"Key": "inbox/nothing"}]})
assert [(e["Key"], e["Code"]) for e in answer.get("Errors", [])] == [("secret.txt", DENIED)], answer
assert [d["Key"] for d in answer["Deleted"]] == ["inbox/nothing"]
# Operations Nimbus does not serve are refused too.
assert code(s3.create_bucket, Bucket="newone") in ("NotImplemented", DENIED)
assert code(s3.delete_bucket, Bucket=B) in ("NotImplemented", DENIED)
assert code(s3.get_bucket_acl, Bucket=B) in ("NotImplemented", DENIED)

# What it is granted works.
s3.put_object(Bucket=B, Key="inbox/mine", Body=b"ok")
s3.list_objects_v2(Bucket="other")

# Unknown keys, wrong secrets, unsigned requests and skewed clocks.
assert code(client(key_id="NIMB" + "A" * 16).list_buckets) == "InvalidAccessKeyId"
assert code(client(key_id="not-a-key").list_buckets) == "InvalidAccessKeyId"
assert code(client(secret="y" * 40).get_object, Bucket="other", Key="x") == "SignatureDoesNotMatch"
assert code(client(secret="y" * 40).put_object, Bucket=B, Key="inbox/x", Body=b"x") == "SignatureDoesNotMatch"
from botocore import UNSIGNED
from botocore.config import Config
import boto3
from s3_common import ENDPOINT, VERIFY

anonymous = boto3.client("s3", endpoint_url=ENDPOINT, region_name="us-east-1", verify=VERIFY,
                         config=Config(signature_version=UNSIGNED, retries={"max_attempts": 1}))
assert code(anonymous.list_objects_v2, Bucket="other") == DENIED
assert code(anonymous.put_object, Bucket=B, Key="inbox/anon", Body=b"x") == DENIED
status, xml = signed_at(time.time() - 3600, lambda: signed("GET", "/other", query="list-type=2"))
assert status == 403 and "<Code>RequestTimeTooSkewed</Code>" in xml, (status, xml)

# Nothing the refused calls aimed at changed.
assert owner.get_object(Bucket=B, Key="secret.txt")["Body"].read() == b"not for you"
assert owner.list_parts(Bucket=B, Key="up", UploadId=upload).get("Parts", []) == []
assert code(owner.head_object, Bucket=B, Key="inbox/copy") == "404"

done()
