"""An S3-compatible bucket as a model source (AWS, MinIO, Ceph, Scaleway, OVH …), through boto3.

The endpoint URL comes from MODELPORT_S3_ENDPOINT_URL, else boto3's own AWS_ENDPOINT_URL;
credentials and region from boto3's usual chain (AWS_ACCESS_KEY_ID/…, profiles). S3 has no
commits, so a revision is a content version: a hash of every key, size and ETag under the
prefix. The same listing always resolves to the same cached snapshot.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Mapping
from typing import Any

from modelport import envs
from modelport.models.remote import PullError, RemoteFile, RemoteListing, Write, take_range
from modelport.models.sources import ModelSource

CHUNK = 1024 * 1024


def content_version(files: tuple[RemoteFile, ...], etags: dict[str, str]) -> str:
    lines = "\n".join(
        f"{f.path}\t{f.size}\t{etags.get(f.path, '')}" for f in sorted(files, key=lambda f: f.path)
    )
    return "v-" + hashlib.sha256(lines.encode()).hexdigest()[:16]


class S3Remote:
    def __init__(self, endpoint_url: str | None = None, credentials: Mapping[str, str] | None = None) -> None:
        self.endpoint_url = endpoint_url or envs.S3_ENDPOINT_URL.get() or None
        # explicit keys (an endpoint's secrets); None: boto3's own chain (environment, profiles)
        self.credentials = dict(credentials or {})
        self._made: Any = None
        self._lock = threading.Lock()

    def _client(self) -> Any:
        """One client, made on first use: clients are thread-safe, making them on boto3's shared
        default session from several threads is not."""
        import boto3
        from botocore.config import Config

        with self._lock:
            if self._made is None:
                config = Config(
                    retries={"max_attempts": 5, "mode": "standard"}, connect_timeout=10, read_timeout=60
                )
                keys = {
                    "aws_access_key_id": self.credentials.get("AWS_ACCESS_KEY_ID"),
                    "aws_secret_access_key": self.credentials.get("AWS_SECRET_ACCESS_KEY"),
                    "aws_session_token": self.credentials.get("AWS_SESSION_TOKEN"),
                }
                self._made = boto3.client(
                    "s3",
                    endpoint_url=self.endpoint_url,
                    config=config,
                    **{k: v for k, v in keys.items() if v},
                )
            return self._made

    def _where(self, source: ModelSource) -> str:
        return f"s3://{source.location}" + (f" at {self.endpoint_url}" if self.endpoint_url else "")

    def listing(self, source: ModelSource) -> RemoteListing:
        from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

        bucket, _, prefix = source.location.partition("/")
        single = source.is_single_file
        search = prefix if single or not prefix else prefix + "/"
        files: list[RemoteFile] = []
        etags: dict[str, str] = {}
        try:
            pages = self._client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=search)
            for page in pages:
                for obj in page.get("Contents", []):
                    key = str(obj["Key"])
                    if single and key != prefix:
                        continue
                    rel = key.rsplit("/", 1)[-1] if single else key[len(search) :]
                    if not rel or rel.endswith("/"):
                        continue  # folder markers
                    etag = str(obj.get("ETag", "")).strip('"')
                    etags[rel] = etag
                    md5 = etag if etag and "-" not in etag else None  # multipart ETags are not an md5
                    files.append(RemoteFile(path=rel, size=int(obj["Size"]), md5=md5, etag=etag or None))
        except NoCredentialsError:
            raise PullError(
                f"{self._where(source)}: no S3 credentials; set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY "
                "(endpoint secrets) or an AWS profile"
            ) from None
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "error")
            raise PullError(f"{self._where(source)}: the server answered {code}") from None
        except BotoCoreError as exc:
            raise PullError(
                f"{self._where(source)}: {exc}; set MODELPORT_S3_ENDPOINT_URL for a non-AWS store"
            ) from None
        if not files:
            raise PullError(f"{self._where(source)}: no objects under this prefix")
        listing_files = tuple(files)
        origin = {"endpoint": self.endpoint_url or "aws"}
        return RemoteListing(
            revision=content_version(listing_files, etags), files=listing_files, origin=origin
        )

    def download(self, source: ModelSource, listing: RemoteListing, file: RemoteFile, write: Write) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        bucket, key = _object(source, file)
        try:
            body = self._client().get_object(Bucket=bucket, Key=key)["Body"]
            for chunk in body.iter_chunks(CHUNK):
                write(chunk)
        except (ClientError, BotoCoreError) as exc:
            raise PullError(f"downloading s3://{bucket}/{key} failed: {exc}") from None

    def read_range(
        self, source: ModelSource, listing: RemoteListing, file: RemoteFile, start: int, stop: int
    ) -> bytes:
        from botocore.exceptions import BotoCoreError, ClientError

        stop = min(stop, file.size)
        if stop <= start:
            return b""
        bucket, key = _object(source, file)
        try:
            reply = self._client().get_object(Bucket=bucket, Key=key, Range=f"bytes={start}-{stop - 1}")
            body = reply["Body"]
            try:
                skip = 0 if reply.get("ContentRange") else start  # no Content-Range: the whole object came
                return take_range(body.iter_chunks(CHUNK), skip, stop - start)
            finally:
                body.close()
        except (ClientError, BotoCoreError) as exc:
            raise PullError(f"reading s3://{bucket}/{key} failed: {exc}") from None


def _object(source: ModelSource, file: RemoteFile) -> tuple[str, str]:
    """The bucket and key of a listed file."""
    bucket, _, prefix = source.location.partition("/")
    return bucket, prefix if source.is_single_file else f"{prefix}/{file.path}" if prefix else file.path
