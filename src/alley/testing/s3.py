"""Provide a real S3 server for tests: MinIO, built once with the machine's Go.

Plugins that read migrations from object storage (``examples/plugins/alley-s3``) are
tested against a real server, never a mock. MinIO is used because it is one binary
that ``go install`` builds directly (no replace directives, no throwaway module) and it
opens two loopback ports; its community edition is source-only and no longer
maintained, so the version is pinned (:data:`MINIO_VERSION`).

The binary is built once into ``$XDG_CACHE_HOME/alley/minio-<version>/minio`` (default
``~/.cache``), under a lock so two test processes racing wait for one build (about ten
minutes on two cores). Each :func:`provide_s3` then starts it from the cache on free
loopback ports, with fresh credentials and a data folder in a temporary directory, waits
for its health endpoint with a deadline, and stops it and removes the folder at the end.

Only the standard library is used: the health check is plain HTTP, so this module does
not need boto3 (tests that talk to the server do).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import secrets
import shutil
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from alley.testing.server import (
    Log,
    ServerUnavailable,
    _default_log,
    _free_port,
    _go_version,
    _Process,
    _run_logged,
    _tail,
    cache_root,
)

__all__ = [
    "MINIO_MODULE",
    "MINIO_VERSION",
    "S3Server",
    "build_minio",
    "find_minio",
    "minio_cache_path",
    "provide_s3",
    "start_s3",
]

MINIO_MODULE = "github.com/minio/minio"
#: The last state of MinIO's community source (a pseudo-version: it has no tags to go by).
MINIO_VERSION = "v0.0.0-20260212201848-7aac2a2c5b7c"
MIN_GO = (1, 24)
READY_TIMEOUT = 30.0
REGION = "us-east-1"

HOW_TO_PROVIDE = (
    "alley.testing needs Go >= 1.24 to build MinIO ({module}@{version}) once into "
    "{cache}, or a MinIO binary at that path"
)


@dataclass
class S3Server:
    """A running S3 server: what a client needs to talk to it.

    ``env()`` gives the variables boto3 reads by itself (``AWS_ENDPOINT_URL``,
    ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_DEFAULT_REGION``), so a
    subprocess (``alley``) reaches this server without any setting of its own.
    """

    endpoint_url: str
    access_key: str
    secret_key: str
    region: str
    data_dir: Path
    pid: int
    binary: Path
    _stopper: _Process | None = field(default=None, repr=False, compare=False)

    def env(self) -> dict[str, str]:
        """boto3's own environment variables for this server."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint_url,
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_DEFAULT_REGION": self.region,
            # Never read the machine's ~/.aws files: the test sees only this server.
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        }

    def stop(self) -> None:
        """Stop the server and remove its data folder (idempotent)."""
        process, self._stopper = self._stopper, None
        if process is not None:
            process.stop()


def minio_cache_path(env: Mapping[str, str] | None = None) -> Path:
    """``$XDG_CACHE_HOME/alley/minio-<version>/minio`` (default ``~/.cache``)."""
    stamp = MINIO_VERSION.removeprefix("v0.0.0-")
    return cache_root(env) / f"minio-{stamp}" / "minio"


def find_minio(env: Mapping[str, str] | None = None) -> Path | None:
    """The cached MinIO binary, or ``None`` when it has not been built yet."""
    cached = minio_cache_path(env)
    return cached if cached.is_file() and os.access(cached, os.X_OK) else None


def build_minio(
    target: Path | None = None,
    *,
    go: str | None = None,
    env: Mapping[str, str] | None = None,
    log: Log = _default_log,
) -> Path:
    """Build MinIO with the machine's Go into ``target`` (once) and return it.

    A lock file next to ``target`` makes concurrent callers wait for one build; the
    binary is moved into place only once ``go install`` succeeded, so a half-built one
    is never found. Go uses its own defaults for where modules come from.
    """
    env = dict(os.environ if env is None else env)
    target = target or minio_cache_path(env)
    go = go or shutil.which("go", path=env.get("PATH"))
    how = HOW_TO_PROVIDE.format(module=MINIO_MODULE, version=MINIO_VERSION, cache=target)
    if go is None:
        raise ServerUnavailable(how)
    go_version = _go_version(go)
    if go_version is None or go_version < MIN_GO:
        raise ServerUnavailable(f"{go} is too old or unusable; " + how)
    target.parent.mkdir(parents=True, exist_ok=True)
    with (target.parent / ".build.lock").open("a+") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log(f"waiting for another process building MinIO into {target.parent}")
            fcntl.flock(lock, fcntl.LOCK_EX)
        if target.is_file():
            return target
        log(
            f"building MinIO ({MINIO_MODULE}@{MINIO_VERSION}) with {go} into {target}; "
            "this happens once and takes about ten minutes"
        )
        started = time.monotonic()
        gobin = Path(tempfile.mkdtemp(prefix=".gobin-", dir=target.parent))
        go_env = {**env, "GOTOOLCHAIN": "local", "CGO_ENABLED": "0", "GOBIN": str(gobin)}
        try:
            _run_logged(
                [go, "install", "-trimpath", f"{MINIO_MODULE}@{MINIO_VERSION}"],
                target.parent,
                go_env,
                log,
                what=f"MinIO {MINIO_VERSION}",
            )
            os.replace(gobin / "minio", target)
        finally:
            shutil.rmtree(gobin, ignore_errors=True)
        log(f"built MinIO in {time.monotonic() - started:.0f} s: {target}")
        return target


def _wait_healthy(process: _Process, url: str, timeout: float) -> None:
    """Poll MinIO's liveness endpoint until it answers 200, the process dies, or the
    deadline passes (then raise with the log's tail)."""
    deadline = time.monotonic() + timeout
    while True:
        code = process.proc.poll()
        if code is not None:
            raise ServerUnavailable(
                f"MinIO exited with status {code} while starting; "
                f"last lines of its log:\n{_tail(process.log_path)}"
            )
        try:
            with urllib.request.urlopen(f"{url}/minio/health/live", timeout=1) as reply:
                if reply.status == 200:
                    return
        except (OSError, urllib.error.URLError) as error:
            if time.monotonic() > deadline:
                raise ServerUnavailable(
                    f"MinIO did not become healthy within {timeout:.0f} s ({error}); "
                    f"last lines of its log:\n{_tail(process.log_path)}"
                ) from error
        time.sleep(0.05)


def start_s3(
    *,
    binary: Path | None = None,
    env: Mapping[str, str] | None = None,
    log: Log = _default_log,
    timeout: float = READY_TIMEOUT,
) -> S3Server:
    """Start MinIO (built first if not cached) on free loopback ports, with random
    credentials and a fresh data folder; the caller stops it (:meth:`S3Server.stop`).

    The ports are free when chosen; if another process takes one first, once more.
    """
    env = dict(os.environ if env is None else env)
    binary = binary or find_minio(env) or build_minio(env=env, log=log)
    access_key = "alley" + secrets.token_hex(4)
    secret_key = secrets.token_urlsafe(24)
    server_env = {
        **env,
        "MINIO_ROOT_USER": access_key,
        "MINIO_ROOT_PASSWORD": secret_key,
        "MINIO_BROWSER": "off",
        "MINIO_UPDATE": "off",
        "MINIO_CI_CD": "1",
    }
    for attempt in range(2):
        tmp = Path(tempfile.mkdtemp(prefix="alley-minio-"))
        (tmp / "data").mkdir()
        port, console = _free_port(), _free_port()
        argv = [
            str(binary),
            "server",
            str(tmp / "data"),
            "--address",
            f"127.0.0.1:{port}",
            "--console-address",
            f"127.0.0.1:{console}",
            "--quiet",
        ]
        process = _Process(argv, tmp, server_env)
        url = f"http://127.0.0.1:{port}"
        try:
            _wait_healthy(process, url, timeout)
        except ServerUnavailable:
            collided = process.proc.poll() is not None and process.port_in_use()
            process.stop()
            if collided and attempt == 0:
                log(f"port {port} or {console} was taken; retrying MinIO on others")
                continue
            raise
        except BaseException:
            process.stop()
            raise
        return S3Server(
            endpoint_url=url,
            access_key=access_key,
            secret_key=secret_key,
            region=REGION,
            data_dir=tmp / "data",
            pid=process.proc.pid,
            binary=binary,
            _stopper=process,
        )
    raise AssertionError("unreachable")  # pragma: no cover


@contextlib.contextmanager
def provide_s3(
    *, env: Mapping[str, str] | None = None, log: Log = _default_log
) -> Iterator[S3Server]:
    """A running S3 server for the ``with`` block, stopped and cleaned after it::

    with provide_s3() as s3:
        boto3.client("s3", endpoint_url=s3.endpoint_url, ...)
    """
    server = start_s3(env=env, log=log)
    try:
        yield server
    finally:
        server.stop()
