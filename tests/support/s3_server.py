"""A real S3-compatible server for tests: moto's server mode on a loopback port.

boto3 talks to it over HTTP exactly as it would to MinIO or AWS (SigV4, list_objects_v2,
ranged GETs, multipart uploads); only the storage behind it is in memory.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "modelport-test",
    "AWS_SECRET_ACCESS_KEY": "modelport-test-secret",
    "AWS_DEFAULT_REGION": "eu-central-1",
}


@contextlib.contextmanager
def s3_server() -> Iterator[str]:
    """Start the server; yields its endpoint URL. Credentials are set in os.environ meanwhile."""
    from moto.server import ThreadedMotoServer

    saved = {k: os.environ.get(k) for k in CREDENTIALS}
    os.environ.update(CREDENTIALS)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def client(url: str) -> Any:
    import boto3

    return boto3.client("s3", endpoint_url=url, **_boto_credentials())


def _boto_credentials() -> dict[str, str]:
    return {
        "aws_access_key_id": CREDENTIALS["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        "region_name": CREDENTIALS["AWS_DEFAULT_REGION"],
    }


def upload_folder(url: str, folder: Path, bucket: str, prefix: str) -> None:
    s3 = client(url)
    with contextlib.suppress(s3.exceptions.BucketAlreadyOwnedByYou):
        s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": "eu-central-1"})
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            s3.upload_file(str(path), bucket, f"{prefix}/{path.relative_to(folder)}")


def put_objects(url: str, bucket: str, objects: Mapping[str, bytes]) -> None:
    """Store each object under its key exactly as given: S3 takes any UTF-8 key (``m/../x``,
    ``m//etc/x``, ``m/a\\b``, even a NUL) and lists it back unchanged, as a hostile bucket would."""
    s3 = client(url)
    with contextlib.suppress(s3.exceptions.BucketAlreadyOwnedByYou):
        s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": "eu-central-1"})
    for key, body in objects.items():
        s3.put_object(Bucket=bucket, Key=key, Body=body)
