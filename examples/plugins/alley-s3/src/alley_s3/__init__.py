"""alley plugin: migrations kept in S3, under ``s3://bucket/prefix/NNNN_name.py``.

A team that builds one artefact and deploys it to many environments keeps the
migrations next to it in object storage and runs them from anywhere::

    alley -o s3_url=s3://my-bucket/releases/42/migrations/ up

or with ``s3_url = "s3://my-bucket/releases/42/migrations/"`` in ``[tool.alley]``.
Where S3 is and who we are come from boto3's own configuration (``AWS_ENDPOINT_URL``,
``AWS_DEFAULT_REGION``, ``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``, a profile,
an instance role…), never from alley's settings, and are never printed.

Discovery lists the prefix (paginated, ``Delimiter="/"``: sub-folders are not read)
and reads each ``NNNN_name.py`` object once per command (one GET each, a few at a
time), so checksums and drift work exactly as for files. Every failure is one of
alley's errors: its message is one line, its exit code documented (see the README).

``create`` does not upload: with ``s3_url`` set it refuses and says which key to write,
because the objects are a release's artefact, written by the build that publishes it.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

from alley.errors import (
    AlleyError,
    AlleyWarning,
    ConfigError,
    ConnectionFailed,
    DiscoveryError,
    SourceMissing,
)
from alley.hookspecs import hookimpl
from alley.model import Migration

if TYPE_CHECKING:
    from alley.settings import Settings

__version__ = "0.1.0"

#: The ``[tool.alley]`` key (or ``-o KEY=VALUE``) naming the bucket and prefix.
OPTION = "s3_url"
#: Seconds to wait for S3 to connect and to answer each request (default 10).
TIMEOUT_OPTION = "s3_timeout"
#: Attempts per request, the first included (default 3; botocore's standard retries).
ATTEMPTS_OPTION = "s3_attempts"
DEFAULT_TIMEOUT = 10.0
DEFAULT_ATTEMPTS = 3
#: Objects read at the same time.
READERS = 8
#: The same rules as the filesystem default.
MIGRATION_FILENAME = re.compile(r"^(?P<id>[0-9]+)_(?P<name>[a-z0-9_]+)\.py$")
NEAR_MISS = re.compile(r"^[0-9]+[^.]*\.py$", re.IGNORECASE)
MAX_ID = 2**63 - 1
# Error codes S3 answers when the keys are wrong or lack permission.
DENIED = {"AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "403"}
T = TypeVar("T")


@dataclass(frozen=True)
class Location:
    """Where the migrations are: a bucket and a key prefix ending in ``/`` (or empty)."""

    bucket: str
    prefix: str

    @property
    def url(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"


def configured_location(settings: Settings) -> Location | None:
    """The ``s3_url`` setting, parsed; ``None`` when it is not set.

    :raises ConfigError: it is not ``s3://BUCKET/`` or ``s3://BUCKET/PREFIX/``.
    """
    value = settings.options.get(OPTION)
    if value is None or not str(value).strip():
        return None
    text = str(value).strip()
    parts = urlsplit(text)
    if parts.scheme != "s3" or not parts.netloc or parts.query or parts.fragment:
        raise ConfigError(
            f"invalid {OPTION} {text!r}: it must be s3://BUCKET/PREFIX/",
            hint=f"e.g. -o {OPTION}=s3://my-bucket/migrations/",
        )
    prefix = parts.path.lstrip("/")
    if prefix and not prefix.endswith("/"):
        prefix += "/"
    return Location(parts.netloc, prefix)


def _number(settings: Settings, key: str, default: float, minimum: float) -> float:
    value = settings.options.get(key, default)
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = float("nan")
    if not number >= minimum:  # also refuses NaN
        raise ConfigError(f"invalid {key} {value!r}: it must be a number >= {minimum:g}")
    return number


def make_client(settings: Settings) -> Any:
    """A boto3 S3 client from boto3's own configuration, with this plugin's timeout and
    attempts. Made from boto3's default session, so handlers registered on
    ``boto3.DEFAULT_SESSION.events`` (how the tests count requests) see its calls."""
    import boto3
    from botocore.config import Config

    timeout = _number(settings, TIMEOUT_OPTION, DEFAULT_TIMEOUT, 0.001)
    attempts = int(_number(settings, ATTEMPTS_OPTION, DEFAULT_ATTEMPTS, 1))
    config = Config(
        connect_timeout=timeout,
        read_timeout=timeout,
        retries={"mode": "standard", "total_max_attempts": attempts},
        max_pool_connections=READERS,
    )
    try:
        return boto3.client("s3", config=config)
    except Exception as error:  # a bad region or endpoint in boto3's configuration
        raise ConfigError(f"cannot configure the S3 client: {_one_line(error)}") from error


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split())


def _endpoint(client: Any) -> str:
    return str(client.meta.endpoint_url)


def translate(error: Exception, client: Any, location: Location, what: str) -> AlleyError:
    """One of alley's errors for a botocore/boto3 failure while doing ``what``.

    Bucket missing and other refusals of the request: 3 (``DiscoveryError``); wrong keys
    or no permission, an unreachable endpoint, a timeout: 4 (``ConnectionFailed``); no
    credentials at all: 3 (``ConfigError``). Credentials are never in the message.
    """
    from botocore.exceptions import (
        ClientError,
        ConnectTimeoutError,
        NoCredentialsError,
        ReadTimeoutError,
    )
    from botocore.exceptions import (
        ConnectionError as BotoConnectionError,
    )

    endpoint = _endpoint(client)
    if isinstance(error, NoCredentialsError):
        return ConfigError(
            f"no AWS credentials to {what}",
            hint="set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE",
        )
    if isinstance(error, (ConnectTimeoutError, ReadTimeoutError)):
        return ConnectionFailed(
            f"S3 at {endpoint} did not answer within the timeout while trying to {what}",
            hint=f"check AWS_ENDPOINT_URL and the network, or raise -o {TIMEOUT_OPTION}=SECONDS",
        )
    if isinstance(error, BotoConnectionError):
        return ConnectionFailed(
            f"cannot reach S3 at {endpoint} to {what}",
            hint="check AWS_ENDPOINT_URL and that the service runs",
        )
    if isinstance(error, ClientError):
        code = str(error.response.get("Error", {}).get("Code", "")) or "unknown"
        if code in {"NoSuchBucket", "404"} and what.startswith("list"):
            return DiscoveryError(
                f"bucket {location.bucket!r} does not exist at {endpoint}",
                hint=f"check {OPTION} and AWS_ENDPOINT_URL",
            )
        if code in DENIED:
            return ConnectionFailed(
                f"S3 at {endpoint} refused to {what}: {code}",
                hint="check AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY and the bucket's policy",
            )
        return DiscoveryError(f"S3 at {endpoint} refused to {what}: {code}")
    return ConnectionFailed(f"S3 at {endpoint} failed to {what}: {_one_line(error)}")


def _call(client: Any, location: Location, what: str, call: Callable[[], T]) -> T:
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        return call()
    except (BotoCoreError, ClientError) as error:
        raise translate(error, client, location, what) from error


def list_names(client: Any, location: Location) -> list[str]:
    """The names of the objects directly under the prefix (all pages of the listing)."""

    def pages() -> Iterator[dict[str, Any]]:
        paginator = client.get_paginator("list_objects_v2")
        yield from paginator.paginate(Bucket=location.bucket, Prefix=location.prefix, Delimiter="/")

    what = f"list {location.url}"
    return [
        item["Key"][len(location.prefix) :]
        for page in _call(client, location, what, lambda: list(pages()))
        for item in page.get("Contents", ())
    ]


def read_source(client: Any, location: Location, name: str) -> str:
    """The text of one object.

    :raises DiscoveryError: it is not UTF-8.
    """
    url = location.url + name

    def get() -> bytes:
        reply = client.get_object(Bucket=location.bucket, Key=location.prefix + name)
        return bytes(reply["Body"].read())

    data = _call(client, location, f"read {url}", get)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise DiscoveryError(
            f"cannot read {url}: it is not UTF-8 text ({error.reason} at byte {error.start})",
            hint="migrations are Python source in UTF-8",
        ) from None


def s3_migrations(client: Any, location: Location) -> list[Migration]:
    """The migrations under ``location``: listed, then each read once.

    Warns :class:`SourceMissing` (an error when no other source has migrations either)
    when the prefix holds none.
    """
    found: list[tuple[int, str, str]] = []
    for name in sorted(list_names(client, location)):
        match = MIGRATION_FILENAME.match(name)
        if match:
            if int(match["id"]) > MAX_ID:
                raise DiscoveryError(
                    f"{location.url}{name}: id {match['id']} is too large (at most {MAX_ID})",
                    hint="renumber it with a smaller id",
                )
            found.append((int(match["id"]), match["name"], name))
        elif NEAR_MISS.match(name):
            warnings.warn(
                AlleyWarning(
                    f"ignored {location.url}{name}: migration filenames are NNNN_name.py "
                    "with a lower-case [a-z0-9_] name"
                ),
                stacklevel=1,
            )
    if not found:
        warnings.warn(
            SourceMissing(
                f"no migrations under {location.url}",
                hint=f"upload NNNN_name.py files there, or fix {OPTION}",
            ),
            stacklevel=1,
        )
        return []
    executor = ThreadPoolExecutor(max_workers=min(READERS, len(found)))
    try:
        sources = list(executor.map(lambda f: read_source(client, location, f[2]), found))
    finally:
        executor.shutdown(wait=True, cancel_futures=True)
    return [
        Migration(
            id=migration_id,
            name=name,
            filename=filename,
            source=source,
            location=location.url + filename,
        )
        for (migration_id, name, filename), source in zip(found, sources, strict=True)
    ]


@hookimpl
def alley_discover_migrations(settings: Settings) -> Sequence[Migration]:
    """The migrations under ``s3_url``, beside what the other plugins find."""
    location = configured_location(settings)
    if location is None:
        return []
    return s3_migrations(make_client(settings), location)


@hookimpl
def alley_create_migration(settings: Settings, migration_id: int, name: str) -> str | None:
    """Refuse while ``s3_url`` is set, naming the key to write; otherwise leave it to the
    filesystem default."""
    location = configured_location(settings)
    if location is None:
        return None
    key = f"{location.url}{migration_id:04}_{name}.py"
    raise ConfigError(
        f"alley-s3 does not write to S3: create {key} with your release's build",
        hint=f"or run 'alley create' without {OPTION} and upload the file",
    )
