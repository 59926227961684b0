"""Virtual-hosted-style requests to an endpoint started with `--s3-domain
s3.example.test`, with a key that may read and write `photos` and `other`:
signed requests whose Host is `other.s3.example.test` (sent to the loopback
address the endpoint listens on, as no DNS names it) reach bucket `other`;
path-style requests to the domain itself, to `localhost` and to the IP
address keep working."""

import os
from urllib.parse import urlsplit

import urllib3
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from s3_common import REGION, client, done

endpoint = urlsplit(os.environ["S3_ENDPOINT"])
port = endpoint.port
pool = urllib3.HTTPConnectionPool("127.0.0.1", port)
credentials = Credentials(os.environ["AWS_ACCESS_KEY_ID"], os.environ["AWS_SECRET_ACCESS_KEY"])


def send(method, host, path, body=b"", query=""):
    """A request signed for `host` (as a client that resolved it would
    sign it), sent to the endpoint's address: `(status, body)`."""
    url = f"http://{host}:{port}{path}" + (f"?{query}" if query else "")
    request = AWSRequest(method=method, url=url, data=body)
    S3SigV4Auth(credentials, "s3", REGION).add_auth(request)
    prepared = request.prepare()
    headers = dict(prepared.headers)
    headers["Host"] = f"{host}:{port}"
    target = urlsplit(prepared.url)
    answer = pool.urlopen(
        method,
        target.path + (f"?{target.query}" if target.query else ""),
        body=body,
        headers=headers,
        retries=False,
    )
    return answer.status, answer.data


# The bucket in the host: put, get, list.
status, text = send("PUT", "other.s3.example.test", "/hosted/a.txt", body=b"virtual")
assert status == 200, (status, text)
status, text = send("GET", "other.s3.example.test", "/hosted/a.txt")
assert (status, text) == (200, b"virtual"), (status, text)
status, text = send("GET", "other.s3.example.test", "/", query="list-type=2&prefix=hosted%2F")
assert status == 200 and b"<Key>hosted/a.txt</Key>" in text, (status, text)
# It went to `other`, not to `photos` nor to a bucket named in the path.
s3 = client()
assert s3.get_object(Bucket="other", Key="hosted/a.txt")["Body"].read() == b"virtual"
status, text = send("GET", "photos.s3.example.test", "/hosted/a.txt")
assert status == 404 and b"<Code>NoSuchKey</Code>" in text, (status, text)
# Path style, through the domain itself and localhost (boto3 above used
# the IP address).
for host in ["s3.example.test", "localhost"]:
    status, text = send("GET", host, "/other/hosted/a.txt")
    assert (status, text) == (200, b"virtual"), (host, status, text)
# A signature for another host is refused: the Host is part of it.
url = f"http://other.s3.example.test:{port}/hosted/a.txt"
request = AWSRequest(method="GET", url=url)
S3SigV4Auth(credentials, "s3", REGION).add_auth(request)
headers = dict(request.prepare().headers)
headers["Host"] = f"photos.s3.example.test:{port}"
answer = pool.urlopen("GET", "/hosted/a.txt", headers=headers, retries=False)
assert answer.status == 403 and b"SignatureDoesNotMatch" in answer.data, answer.data

done()
