"""What the S3 client scripts share: a boto3 client for the endpoint the
test passes in the environment, error codes, and raw signed requests."""

import os
import sys

import boto3
import botocore
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials

ENDPOINT = os.environ["S3_ENDPOINT"]
VERIFY = os.environ.get("S3_CA_BUNDLE") or None
REGION = "us-east-1"


def client(key_id=None, secret=None, **config):
    return boto3.client(
        "s3",
        endpoint_url=ENDPOINT,
        aws_access_key_id=key_id or os.environ["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=secret or os.environ["AWS_SECRET_ACCESS_KEY"],
        region_name=REGION,
        verify=VERIFY,
        config=Config(
            # Presigned URLs too are SigV4 (boto3 presigns with SigV2
            # unless told).
            signature_version="s3v4",
            s3={"addressing_style": "path"},
            retries={"max_attempts": 1},
            **config,
        ),
    )


def code(call, *args, **kwargs):
    """The S3 error code `call` fails with (an AssertionError if it works)."""
    try:
        call(*args, **kwargs)
    except botocore.exceptions.ClientError as e:
        return e.response["Error"]["Code"]
    raise AssertionError(f"{call.__name__} succeeded; expected an error")


def signed(method, path, body=b"", headers=None, query=""):
    """A raw request signed with SigV4 (for bodies SDKs never send):
    `(status, body)`."""
    import urllib3

    url = ENDPOINT + path + (("?" + query) if query else "")
    headers = dict(headers or {})
    request = AWSRequest(method=method, url=url, data=body, headers=headers)
    if headers.get("x-amz-content-sha256") == "STREAMING-UNSIGNED-PAYLOAD-TRAILER":
        # botocore signs its own payload hash unless told the body is
        # aws-chunked with a trailer.
        request.context["checksum"] = {"request_algorithm": {"in": "trailer"}}
    credentials = Credentials(
        os.environ["AWS_ACCESS_KEY_ID"], os.environ["AWS_SECRET_ACCESS_KEY"]
    )
    S3SigV4Auth(credentials, "s3", REGION).add_auth(request)
    prepared = request.prepare()
    pool = urllib3.PoolManager(ca_certs=VERIFY) if VERIFY else urllib3.PoolManager()
    answer = pool.request(
        method, prepared.url, headers=dict(prepared.headers), body=body, retries=False
    )
    return answer.status, answer.data.decode("utf-8", "replace")


def done():
    print("ok", file=sys.stderr)


def signed_at(when, sign):
    """What `sign()` makes when the signing clock says `when` (a Unix
    time): a presigned URL that expired, or a request with a skewed clock."""
    import datetime

    import botocore.auth

    def at(remove_tzinfo=True):
        moment = datetime.datetime.fromtimestamp(when, datetime.timezone.utc)
        return moment.replace(tzinfo=None) if remove_tzinfo else moment

    # botocore signs through awscrt when it is installed (for CRC32C), and
    # that signer reads the clock through its own module.
    modules = [botocore.auth]
    try:
        import botocore.crt.auth

        modules.append(botocore.crt.auth)
    except ImportError:
        pass
    real = [m.get_current_datetime for m in modules]
    for m in modules:
        m.get_current_datetime = at
    try:
        return sign()
    finally:
        for m, clock in zip(modules, real):
            m.get_current_datetime = clock
