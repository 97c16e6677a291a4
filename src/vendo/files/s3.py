"""Blobs in an S3-compatible bucket (AWS S3, MinIO, Cloudflare R2, ...), on boto3.

Credentials and region come from the usual AWS variables and files
(``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_SESSION_TOKEN``,
``AWS_DEFAULT_REGION``, ``AWS_PROFILE``, an instance or pod role): boto3's own chain.
``VENDO_STORAGE_ENDPOINT_URL`` points at a server other than AWS. boto3 is the optional
extra ``vendo[s3]``, imported only when a bucket is configured.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from vendo.errors import StorageError

__all__ = ["S3Blobs"]

_CHUNK = 1 << 20


class S3Blobs:
    """Blobs under ``prefix`` in ``bucket``; keys are the same as on disk."""

    def __init__(self, client: Any, bucket: str, prefix: str = "") -> None:
        self.client = client
        self.bucket = bucket
        self.prefix = prefix
        self.where = f"s3://{bucket}/{prefix}"

    @classmethod
    def connect(cls, bucket: str, prefix: str, *, endpoint_url: str | None = None) -> S3Blobs:
        """A client from boto3's credential chain; the bucket must exist and answer."""
        try:
            import boto3
            from botocore.config import Config
        except ImportError:
            raise StorageError("VENDO_STORAGE_URL needs boto3: pip install 'vendo[s3]'") from None
        config = Config(retries={"max_attempts": 5, "mode": "standard"})
        client = boto3.client("s3", endpoint_url=endpoint_url or None, config=config)
        blobs = cls(client, bucket, prefix)
        blobs.check()
        return blobs

    def check(self) -> None:
        """Fail start-up in one line when the bucket cannot be reached or read."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self.client.head_bucket(Bucket=self.bucket)
        except (BotoCoreError, ClientError) as exc:
            raise StorageError(f"cannot use the bucket {self.where}: {exc}") from None

    def _key(self, key: str) -> str:
        return self.prefix + key

    def put(self, key: str, source: Path, *, move: bool = False) -> None:
        # upload_file sends big files in parts, several at once
        self.client.upload_file(str(source), self.bucket, self._key(key))
        if move:
            source.unlink(missing_ok=True)

    def fetch(self, key: str, target: Path) -> None:
        from botocore.exceptions import ClientError

        try:
            self.client.download_file(self.bucket, self._key(key), str(target))
        except ClientError as exc:
            if _missing(exc):
                raise FileNotFoundError(self.where + key) from None
            raise

    def local_path(self, key: str) -> Path | None:
        return None

    def exists(self, key: str) -> bool:
        from botocore.exceptions import ClientError

        try:
            self.client.head_object(Bucket=self.bucket, Key=self._key(key))
        except ClientError as exc:
            if _missing(exc):
                return False
            raise
        return True

    def chunks(self, key: str) -> Iterator[bytes]:
        from botocore.exceptions import ClientError

        try:
            body = self.client.get_object(Bucket=self.bucket, Key=self._key(key))["Body"]
        except ClientError as exc:
            if _missing(exc):
                raise FileNotFoundError(self.where + key) from None
            raise

        def read() -> Iterator[bytes]:
            try:
                yield from body.iter_chunks(_CHUNK)
            finally:
                body.close()

        return read()

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self._key(key))


def _missing(exc: Any) -> bool:
    code = str(exc.response.get("Error", {}).get("Code", ""))
    return code in ("404", "NoSuchKey", "NotFound")
