"""Objects in S3-compatible storage as voice sources (AWS S3, MinIO, SeaweedFS, ...)."""

from __future__ import annotations

import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass

import urllib3
from minio import Minio
from minio.error import InvalidResponseError, MinioException, S3Error

from ttsfleet.manifests import S3Object
from ttsfleet.voices.errors import VoiceSourceError
from ttsfleet.voices.http import chunks

# S3 error codes that another attempt will not fix.
PERMANENT_CODES = frozenset({"NoSuchKey", "NoSuchBucket", "AccessDenied", "InvalidAccessKeyId"})


@dataclass(frozen=True)
class S3Credentials:
    """An access key pair (from the source's credentialsSecret); None means anonymous."""

    access_key: str
    secret_key: str


class Bucket:
    """Reads one source's objects with the minio client over the fetch's own HTTP pool."""

    def __init__(
        self, http: urllib3.PoolManager, source: S3Object, credentials: S3Credentials | None
    ) -> None:
        endpoint = urllib.parse.urlsplit(source.endpoint)
        if endpoint.scheme not in ("http", "https") or not endpoint.netloc:
            raise VoiceSourceError(
                "BadEndpoint",
                f"S3 endpoint {source.endpoint!r} must be an http(s) URL",
                permanent=True,
            )
        self._source = source
        self._client = Minio(
            endpoint.netloc,
            access_key=credentials.access_key if credentials else None,
            secret_key=credentials.secret_key if credentials else None,
            secure=endpoint.scheme == "https",
            region=source.region,
            http_client=http,
        )

    def read(self, key: str, deadline: float) -> Iterator[bytes]:
        what = f"s3://{self._source.bucket}/{key}"
        try:
            response = self._client.get_object(self._source.bucket, key)
        except S3Error as error:
            raise VoiceSourceError(
                "NotFound" if error.code in ("NoSuchKey", "NoSuchBucket") else "S3Error",
                f"{what}: {error.code}: {error.message}",
                permanent=error.code in PERMANENT_CODES,
            ) from error
        except InvalidResponseError as error:
            # An error answer minio could not parse (some servers send text/xml): by status.
            status = int(vars(error).get("_code") or 0)  # minio keeps it unexported
            raise VoiceSourceError(
                "NotFound" if status == 404 else "S3Error",
                f"{what}: {error}",
                permanent=status in (400, 403, 404),
            ) from error
        except (MinioException, urllib3.exceptions.HTTPError) as error:
            raise VoiceSourceError("Unreachable", f"{what}: {error}", permanent=False) from error
        return chunks(response, what, deadline)
