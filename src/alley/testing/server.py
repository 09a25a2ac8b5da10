"""Provide a real MongoDB-wire-compatible server: an external URI, a ``mongod``, FerretDB
or mongo-java-server.

``ALLEY_TEST_SERVER`` (``uri``, ``mongod``, ``ferretdb`` or ``mongo-java-server``)
chooses one kind. Unset, the order is fixed (``docs/testing.md``):

1. ``ALLEY_TEST_MONGODB_URI`` if set, used as is;
2. a ``mongod`` on ``PATH``, started on a free loopback port in a temporary directory;
3. FerretDB 1.24.2 with its SQLite backend: a ``ferretdb`` on ``PATH`` that reports
   v1.24.x, the cached binary, or one built once with the machine's ``go``;
4. otherwise :class:`ServerUnavailable`, whose message says how to provide a server.

mongo-java-server (``alley.testing.mongo_java_server``) is used only when chosen.

Only the standard library is imported at module level; pymongo is imported inside the
functions that talk to a server, so importing the pytest plugin costs nothing.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import fcntl
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Collection, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

from alley.testing.capabilities import (
    FERRETDB_1_SQLITE,
    MONGOD_STANDALONE,
    UNKNOWN_SERVER,
    Capabilities,
    capabilities_from_server_info,
)

if TYPE_CHECKING:
    from pymongo import MongoClient

__all__ = [
    "ALL_KINDS",
    "DEFAULT_KINDS",
    "FERRETDB_MODULE",
    "FERRETDB_VERSION",
    "SERVER_ENV",
    "URI_ENV",
    "Capabilities",
    "Credentials",
    "Log",
    "Server",
    "ServerKind",
    "ServerUnavailable",
    "build_ferretdb",
    "cache_root",
    "ferretdb_cache_path",
    "find_ferretdb",
    "provide_server",
    "selected_kinds",
    "start_server",
    "uri_with_database",
]

FERRETDB_VERSION = "v1.24.2"
FERRETDB_MODULE = "github.com/FerretDB/FerretDB"
URI_ENV = "ALLEY_TEST_MONGODB_URI"
SERVER_ENV = "ALLEY_TEST_SERVER"
MIN_GO = (1, 24)
READY_TIMEOUT = 20.0
STOP_TIMEOUT = 10.0

ServerKind = Literal["uri", "mongod", "ferretdb", "mongo-java-server"]
#: Every kind, in the order they are tried when several are allowed.
ALL_KINDS: tuple[ServerKind, ...] = ("uri", "mongod", "ferretdb", "mongo-java-server")
#: The kinds tried when neither the caller nor ``ALLEY_TEST_SERVER`` chooses.
DEFAULT_KINDS: tuple[ServerKind, ...] = ("uri", "mongod", "ferretdb")
Log = Callable[[str], None]

HOW_TO_PROVIDE = (
    "alley.testing needs a real MongoDB-wire-compatible server and found none. "
    "Provide one of: (1) set ALLEY_TEST_MONGODB_URI to a running MongoDB "
    "(e.g. mongodb://127.0.0.1:27017/); (2) put `mongod` on PATH; "
    "(3) install Go >= 1.24 so FerretDB 1.24.2 can be built once into {cache} "
    "(or put a `ferretdb` 1.24 binary on PATH or at that path); "
    "or (4) set ALLEY_TEST_SERVER=mongo-java-server with Java >= 17 and Maven on PATH."
)


class ServerUnavailable(RuntimeError):
    """No server could be provided, or the one chosen failed to start."""


@dataclass(frozen=True)
class Credentials:
    """A user the server is started with (FerretDB) or that is created on it."""

    username: str
    password: str
    database: str = "admin"


def _default_log(message: str) -> None:
    sys.stderr.write(f"alley.testing: {message}\n")
    sys.stderr.flush()


@dataclass
class Server:
    """A server the tests can talk to.

    ``uri`` is connectable as is (it carries the credentials when the server was asked
    for some); ``kind`` says how it was provided; ``version`` is the server's version
    (FerretDB's own version for FerretDB, mongo-java-server's for it,
    ``buildInfo.version`` otherwise); ``description`` is one line for reports;
    ``capabilities`` says what it can do (``alley.testing.capabilities``).
    """

    uri: str
    kind: ServerKind
    version: str
    description: str
    ferretdb: bool = False
    credentials: Credentials | None = None
    pid: int | None = None
    workdir: Path | None = None
    capabilities: Capabilities = UNKNOWN_SERVER
    _stopper: Callable[[], None] | None = field(default=None, repr=False, compare=False)

    def stop(self) -> None:
        """Stop what was started for this server (idempotent; a no-op for ``uri``)."""
        stopper, self._stopper = self._stopper, None
        if stopper is not None:
            stopper()

    def uri_for_database(self, database: str) -> str:
        """This server's URI with ``database`` as its default database."""
        return uri_with_database(self.uri, database)


# --------------------------------------------------------------------------- helpers


def uri_with_database(uri: str, database: str) -> str:
    """Put ``database`` in the path of ``uri``, keeping hosts, credentials and options.

    When the URI carries credentials and no ``authSource``, the old default database
    (or ``admin``) becomes the explicit ``authSource`` so authentication is unchanged.
    """
    parts = urlsplit(uri)
    query = parse_qsl(parts.query, keep_blank_values=True)
    if "@" in parts.netloc and not any(k.lower() == "authsource" for k, _ in query):
        query.append(("authSource", parts.path.lstrip("/") or "admin"))
    return urlunsplit(
        (parts.scheme, parts.netloc, "/" + quote(database, safe=""), urlencode(query), "")
    )


def _redact(uri: str) -> str:
    parts = urlsplit(uri)
    if "@" not in parts.netloc:
        return uri
    userinfo, hosts = parts.netloc.rsplit("@", 1)
    user = userinfo.split(":", 1)[0]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{hosts}"))


def _with_credentials(uri: str, credentials: Credentials) -> str:
    parts = urlsplit(uri)
    hosts = parts.netloc.rsplit("@", 1)[-1]
    userinfo = f"{quote(credentials.username, safe='')}:{quote(credentials.password, safe='')}"
    query = [(k, v) for k, v in parse_qsl(parts.query) if k.lower() != "authsource"]
    query.append(("authSource", credentials.database))
    return urlunsplit(
        (parts.scheme, f"{userinfo}@{hosts}", parts.path or "/", urlencode(query), "")
    )


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _pdeathsig_preexec() -> Callable[[], None] | None:
    """A ``preexec_fn`` making Linux SIGTERM the child when its parent thread dies.

    ``prctl`` is looked up here, in the parent, so the child only calls a function
    pointer between fork and exec (no dlopen, no locks). ``None`` off Linux.
    """
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    pr_set_pdeathsig = 1
    sigterm = int(signal.SIGTERM)

    def preexec() -> None:  # pragma: no cover - runs in the child
        prctl(pr_set_pdeathsig, sigterm, 0, 0, 0)

    return preexec


def _client(uri: str, timeout_ms: int) -> MongoClient[dict[str, Any]]:
    from pymongo import MongoClient

    return MongoClient(
        uri,
        serverSelectionTimeoutMS=timeout_ms,
        connectTimeoutMS=timeout_ms,
        socketTimeoutMS=max(timeout_ms, 10_000),
        appname="alley-testing",
    )


def _build_info(uri: str, timeout_ms: int = 5000) -> dict[str, Any]:
    client = _client(uri, timeout_ms)
    try:
        client.admin.command("ping")
        return dict(client.admin.command("buildInfo"))
    finally:
        client.close()


def _tail(path: Path, lines: int = 20) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:]) or "(empty log)"


# ------------------------------------------------------------------ live processes

_LIVE: dict[int, Callable[[], None]] = {}
_LIVE_LOCK = threading.Lock()


@atexit.register
def _stop_all() -> None:
    with _LIVE_LOCK:
        stoppers = list(_LIVE.values())
        _LIVE.clear()
    for stop in stoppers:
        stop()


class _Process:
    """A server process in its own temporary directory, stopped exactly once."""

    def __init__(self, argv: list[str], tmp: Path, env: Mapping[str, str] | None) -> None:
        self.tmp = tmp
        self.log_path = tmp / "server.log"
        self._lock = threading.Lock()
        self._stopped = False
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=tmp,
                env=dict(env) if env is not None else None,
                # Own process group: Ctrl-C in a terminal reaches us, not the server,
                # so we stop it in order.
                start_new_session=True,
                # The server dies with us even on SIGKILL. The function only calls a
                # pointer resolved beforehand, which is safe with threads around.
                preexec_fn=_pdeathsig_preexec(),  # noqa: PLW1509
            )
        with _LIVE_LOCK:
            _LIVE[id(self)] = self.stop

    def stop(self) -> None:
        with self._lock:
            if self._stopped:
                return
            self._stopped = True
        with _LIVE_LOCK:
            _LIVE.pop(id(self), None)
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def wait_ready(self, uri: str, what: str, timeout: float = READY_TIMEOUT) -> None:
        """Wait until ``ping`` answers; raise with the log's tail if the process dies."""
        from pymongo.errors import PyMongoError

        deadline = time.monotonic() + timeout
        client = _client(uri, 500)
        try:
            while True:
                code = self.proc.poll()
                if code is not None:
                    raise ServerUnavailable(
                        f"{what} exited with status {code} while starting; "
                        f"last lines of its log:\n{_tail(self.log_path)}"
                    )
                try:
                    client.admin.command("ping")
                    return
                except PyMongoError as exc:
                    if time.monotonic() > deadline:
                        raise ServerUnavailable(
                            f"{what} did not answer ping within {timeout:.0f} s ({exc}); "
                            f"last lines of its log:\n{_tail(self.log_path)}"
                        ) from exc
                time.sleep(0.1)
        finally:
            client.close()

    def port_in_use(self) -> bool:
        text = _tail(self.log_path, 50).lower()
        return "address already in use" in text or "addrinuse" in text


# ------------------------------------------------------------------------ FerretDB


def cache_root(env: Mapping[str, str] | None = None) -> Path:
    """``$XDG_CACHE_HOME/alley`` (default ``~/.cache/alley``): where servers are built."""
    env = os.environ if env is None else env
    base = env.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "alley"


def ferretdb_cache_path(env: Mapping[str, str] | None = None) -> Path:
    """``$XDG_CACHE_HOME/alley/ferretdb-1.24.2/ferretdb`` (default ``~/.cache``)."""
    return cache_root(env) / f"ferretdb-{FERRETDB_VERSION.lstrip('v')}" / "ferretdb"


def _ferretdb_version(binary: str | Path) -> str | None:
    try:
        out = subprocess.run(
            [str(binary), "--version"],
            capture_output=True,
            text=True,
            timeout=20,
            check=False,
            env={**os.environ, "DO_NOT_TRACK": "1"},
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    match = re.search(r"^version:\s*(v\S+)", out.stdout, re.MULTILINE)
    return match.group(1) if match else None


def _is_ferretdb_124(binary: str | Path) -> bool:
    version = _ferretdb_version(binary)
    return version is not None and version.startswith("v1.24.")


def find_ferretdb(env: Mapping[str, str] | None = None) -> Path | None:
    """A usable FerretDB 1.24 binary: on ``PATH`` (if it says v1.24.x), else the cache."""
    env = os.environ if env is None else env
    on_path = shutil.which("ferretdb", path=env.get("PATH"))
    if on_path and _is_ferretdb_124(on_path):
        return Path(on_path)
    cached = ferretdb_cache_path(env)
    if cached.is_file() and _is_ferretdb_124(cached):
        return cached
    return None


def _go_version(go: str) -> tuple[int, int] | None:
    try:
        out = subprocess.run(
            [go, "env", "GOVERSION"], capture_output=True, text=True, timeout=60, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    match = re.match(r"go(\d+)\.(\d+)", out.stdout.strip())
    return (int(match.group(1)), int(match.group(2))) if match else None


def _run_logged(
    argv: list[str],
    cwd: Path,
    env: Mapping[str, str],
    log: Log,
    what: str = f"FerretDB {FERRETDB_VERSION}",
) -> str:
    """Run a step of building ``what``, copying its output to ``log`` line by line;
    return the output."""
    log("$ " + " ".join(argv))
    proc = subprocess.Popen(
        argv,
        cwd=cwd,
        env=dict(env),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdout is not None
    lines: list[str] = []
    for line in proc.stdout:
        lines.append(line)
        log("  " + line.rstrip("\n"))
    if proc.wait() != 0:
        raise ServerUnavailable(
            f"building {what} failed: `{' '.join(argv)}` exited with "
            f"status {proc.returncode}; last output:\n{''.join(lines[-20:])}"
        )
    return "".join(lines)


def build_ferretdb(
    target: Path | None = None,
    *,
    go: str | None = None,
    env: Mapping[str, str] | None = None,
    log: Log = _default_log,
) -> Path:
    """Build FerretDB 1.24.2 with the machine's Go into ``target`` (once) and return it.

    ``target`` defaults to :func:`ferretdb_cache_path`. A lock file next to it makes
    concurrent callers wait for one build; the binary appears atomically.

    Why not ``go install``: the published module lacks ``build/version/version.txt``
    (it is git-ignored), and a binary built from the module panics on start with
    "Invalid build/version/version.txt" (FerretDB issue 2982) — checked on this
    project's machines, also inside a throwaway module with ``go get -tool``. So we
    download the module source, write that file and ``go build`` it ourselves.
    """
    env = dict(os.environ if env is None else env)
    target = target or ferretdb_cache_path(env)
    go = go or shutil.which("go", path=env.get("PATH"))
    if go is None:
        raise ServerUnavailable(HOW_TO_PROVIDE.format(cache=target))
    go_version = _go_version(go)
    if go_version is None or go_version < MIN_GO:
        found = "unknown" if go_version is None else f"{go_version[0]}.{go_version[1]}"
        raise ServerUnavailable(
            f"{go} is Go {found}; FerretDB {FERRETDB_VERSION} needs Go >= 1.24. "
            + HOW_TO_PROVIDE.format(cache=target)
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    with (target.parent / ".build.lock").open("a+") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log(f"waiting for another process building FerretDB into {target.parent}")
            fcntl.flock(lock, fcntl.LOCK_EX)
        if target.is_file() and _is_ferretdb_124(target):
            return target
        log(
            f"building FerretDB {FERRETDB_VERSION} (SQLite backend) with {go} into {target}; "
            "this happens once and takes a few minutes"
        )
        started = time.monotonic()
        go_env = {**env, "GOTOOLCHAIN": "local", "CGO_ENABLED": "0", "GOFLAGS": "-mod=mod"}
        with tempfile.TemporaryDirectory(prefix="alley-ferretdb-build-") as work_name:
            work = Path(work_name)
            (work / "mod").mkdir()
            _run_logged([go, "mod", "init", "tmp"], work / "mod", go_env, log)
            out = _run_logged(
                [go, "mod", "download", "-json", f"{FERRETDB_MODULE}@{FERRETDB_VERSION}"],
                work / "mod",
                go_env,
                log,
            )
            info = json.loads(out[out.index("{") :])
            if info.get("Error") or not info.get("Dir"):
                raise ServerUnavailable(f"go mod download of FerretDB failed: {info}")
            src = work / "src"
            shutil.copytree(info["Dir"], src, symlinks=True)
            for root, dirs, files in os.walk(src):
                for name in [*dirs, *files, "."]:
                    path = Path(root, name)
                    if not path.is_symlink():
                        path.chmod(path.stat().st_mode | 0o200)
            (src / "build" / "version" / "version.txt").write_text(FERRETDB_VERSION + "\n")
            tmp_out = target.parent / f".ferretdb.{os.getpid()}.{threading.get_ident()}.tmp"
            try:
                _run_logged(
                    [go, "build", "-v", "-trimpath", "-o", str(tmp_out), "./cmd/ferretdb"],
                    src,
                    go_env,
                    log,
                )
                built = _ferretdb_version(tmp_out)
                if built != FERRETDB_VERSION:
                    raise ServerUnavailable(
                        f"the FerretDB binary built at {tmp_out} reports version {built!r}, "
                        f"expected {FERRETDB_VERSION}"
                    )
                os.replace(tmp_out, target)
            finally:
                tmp_out.unlink(missing_ok=True)
        log(f"built FerretDB {FERRETDB_VERSION} in {time.monotonic() - started:.0f} s: {target}")
        return target


def start_on_free_port(
    what: str,
    argv_for: Callable[[Path, int], list[str]],
    env: Mapping[str, str],
    log: Log,
    *,
    prefix: str,
    uri_for: Callable[[int], str] = lambda port: f"mongodb://127.0.0.1:{port}/",
    timeout: float = READY_TIMEOUT,
) -> tuple[_Process, str, Path]:
    """Start a server in a new temporary folder on a free loopback port, and wait until
    it answers at ``uri_for(port)``. The port is free when chosen, but another process
    may take it before the server binds: then once more, on another port.

    :returns: the running process, its URI and its folder.
    """
    for attempt in range(2):
        tmp = Path(tempfile.mkdtemp(prefix=prefix))
        port = _free_port()
        process = _Process(argv_for(tmp, port), tmp, env)
        uri = uri_for(port)
        try:
            process.wait_ready(uri, what, timeout=timeout)
        except ServerUnavailable:
            collided = process.proc.poll() is not None and process.port_in_use()
            process.stop()
            if collided and attempt == 0:
                log(f"port {port} was taken; retrying {what} on another port")
                continue
            raise
        except BaseException:
            process.stop()
            raise
        return process, uri, tmp
    raise AssertionError("unreachable")  # pragma: no cover


def _start_ferretdb(
    binary: Path, credentials: Credentials | None, env: Mapping[str, str], log: Log
) -> Server:
    version = _ferretdb_version(binary) or FERRETDB_VERSION

    def argv_for(tmp: Path, port: int) -> list[str]:
        (tmp / "data").mkdir()
        (tmp / "state").mkdir()
        argv = [
            str(binary),
            "--handler=sqlite",
            f"--sqlite-url=file:{tmp.resolve()}/data/",
            f"--listen-addr=127.0.0.1:{port}",
            f"--state-dir={tmp / 'state'}",
            "--debug-addr=-",
            "--telemetry=disable",
            "--log-level=warn",
        ]
        # Never --repl-set-name: pymongo would then send txnNumber, which FerretDB ignores.
        if credentials is not None:
            argv += [
                "--test-enable-new-auth=true",
                f"--setup-username={credentials.username}",
                f"--setup-password={credentials.password}",
                f"--setup-database={credentials.database}",
            ]
        return argv

    def uri_for(port: int) -> str:
        uri = f"mongodb://127.0.0.1:{port}/"
        return _with_credentials(uri, credentials) if credentials is not None else uri

    process, uri, tmp = start_on_free_port(
        f"FerretDB ({binary})",
        argv_for,
        {**env, "DO_NOT_TRACK": "1"},
        log,
        prefix="alley-ferretdb-",
        uri_for=uri_for,
    )
    auth = " with authentication" if credentials else ""
    return Server(
        uri=uri,
        kind="ferretdb",
        version=version,
        description=f"FerretDB {version} (SQLite){auth} at {_redact(uri)}",
        ferretdb=True,
        credentials=credentials,
        pid=process.proc.pid,
        workdir=tmp,
        capabilities=FERRETDB_1_SQLITE,
        _stopper=process.stop,
    )


# -------------------------------------------------------------------------- mongod


def _create_user(uri: str, credentials: Credentials) -> Callable[[], None]:
    """Create ``credentials`` on the server at ``uri``; return a function dropping it."""
    client = _client(uri, 5000)
    db = client[credentials.database]
    try:
        db.command(
            "createUser",
            credentials.username,
            pwd=credentials.password,
            roles=[{"role": "root", "db": "admin"}],
        )
    finally:
        client.close()

    def drop() -> None:
        from pymongo.errors import PyMongoError

        dropper = _client(uri, 5000)
        with contextlib.suppress(PyMongoError):
            dropper[credentials.database].command("dropUser", credentials.username)
        dropper.close()

    return drop


def _start_mongod(
    mongod: str, credentials: Credentials | None, env: Mapping[str, str], log: Log
) -> Server:
    def argv_for(tmp: Path, port: int) -> list[str]:
        (tmp / "db").mkdir()
        return [
            mongod,
            "--dbpath",
            str(tmp / "db"),
            "--bind_ip",
            "127.0.0.1",
            "--port",
            str(port),
            "--unixSocketPrefix",
            str(tmp),
        ]

    process, uri, tmp = start_on_free_port(
        f"mongod ({mongod})", argv_for, env, log, prefix="alley-mongod-", timeout=60
    )
    try:
        info = _build_info(uri)
        if credentials is not None:
            _create_user(uri, credentials)
            uri = _with_credentials(uri, credentials)
    except BaseException:
        process.stop()
        raise
    version = str(info.get("version", "unknown"))
    return Server(
        uri=uri,
        kind="mongod",
        version=version,
        description=f"MongoDB {version} (mongod {mongod}) at {_redact(uri)}",
        credentials=credentials,
        pid=process.proc.pid,
        workdir=tmp,
        capabilities=MONGOD_STANDALONE,
        _stopper=process.stop,
    )


# ----------------------------------------------------------------------------- URI


def _hello(uri: str, timeout_ms: int = 5000) -> dict[str, Any] | None:
    """The server's ``hello`` answer, or ``None`` if it does not know the command."""
    from pymongo.errors import OperationFailure

    client = _client(uri, timeout_ms)
    try:
        return dict(client.admin.command("hello"))
    except OperationFailure:
        return None
    finally:
        client.close()


def _use_uri(uri: str, credentials: Credentials | None) -> Server:
    from pymongo.errors import PyMongoError

    try:
        info = _build_info(uri)
        hello = _hello(uri)
    except PyMongoError as exc:
        raise ServerUnavailable(
            f"{URI_ENV} is set to {_redact(uri)}, but that server does not answer: {exc}"
        ) from exc
    capabilities = capabilities_from_server_info(info, hello)
    stopper: Callable[[], None] | None = None
    if credentials is not None:
        try:
            stopper = _create_user(uri, credentials)
        except PyMongoError as exc:
            raise ServerUnavailable(
                f"could not create the user {credentials.username!r} on the server of "
                f"{URI_ENV} ({_redact(uri)}): {exc}"
            ) from exc
        uri = _with_credentials(uri, credentials)
    ferret = info.get("ferretdbVersion")
    mongo_java_server = info.get("mongoJavaServerVersion")
    if ferret:
        version = str(ferret)
        what = f"FerretDB {version}"
    elif mongo_java_server:
        version = str(mongo_java_server)
        what = f"mongo-java-server {version}"
    else:
        version = str(info.get("version", "unknown"))
        what = f"MongoDB {version}"
    return Server(
        uri=uri,
        kind="uri",
        version=version,
        description=f"{what} from {URI_ENV} at {_redact(uri)}",
        ferretdb=bool(ferret),
        credentials=credentials,
        capabilities=capabilities,
        _stopper=stopper,
    )


# ------------------------------------------------------------------------- public


def selected_kinds(
    env: Mapping[str, str] | None = None, kinds: Collection[ServerKind] | None = None
) -> tuple[ServerKind, ...]:
    """The kinds to try, in order: ``kinds`` if given, else the one ``ALLEY_TEST_SERVER``
    names, else :data:`DEFAULT_KINDS`.

    :raises ServerUnavailable: ``ALLEY_TEST_SERVER`` names no kind.
    """
    if kinds is not None:
        return tuple(kind for kind in ALL_KINDS if kind in kinds)
    env = os.environ if env is None else env
    chosen = env.get(SERVER_ENV, "").strip().lower()
    if not chosen:
        return DEFAULT_KINDS
    if chosen not in ALL_KINDS:
        raise ServerUnavailable(
            f"{SERVER_ENV}={chosen!r} is not a kind of server alley.testing provides; "
            f"use one of {', '.join(ALL_KINDS)} (or unset it for the default order "
            f"{', '.join(DEFAULT_KINDS)})"
        )
    return (chosen,)


def _unavailable(kinds: tuple[ServerKind, ...], env: Mapping[str, str], why: str = "") -> str:
    from alley.testing.mongo_java_server import mongo_java_server_cache_dir

    how = HOW_TO_PROVIDE.format(cache=ferretdb_cache_path(env))
    chosen = f" ({SERVER_ENV}={env[SERVER_ENV]})" if env.get(SERVER_ENV, "").strip() else ""
    if kinds == DEFAULT_KINDS:
        return f"{why} {how}".strip()
    return (
        f"no server of the kinds {', '.join(kinds)}{chosen} is available"
        f"{': ' + why if why else ''}. {how} mongo-java-server is built once into "
        f"{mongo_java_server_cache_dir(env)}."
    )


def start_server(
    *,
    kinds: Collection[ServerKind] | None = None,
    credentials: Credentials | None = None,
    env: Mapping[str, str] | None = None,
    build: bool = True,
    log: Log = _default_log,
) -> Server:
    """Provide a server by the fixed order; the caller must call ``Server.stop()``.

    :param kinds: the ways allowed, in the fixed order (e.g. ``("ferretdb",)``); by
        default the one ``ALLEY_TEST_SERVER`` names, else ``uri``, ``mongod``,
        ``ferretdb`` (:func:`selected_kinds`).
    :param credentials: a user the server must know. FerretDB is started with
        ``--test-enable-new-auth`` and this setup user; on a ``mongod`` or an external
        URI the user is created with ``createUser`` (and dropped again for a URI);
        mongo-java-server has no users (:class:`ServerUnavailable`).
    :param env: the environment to read (``os.environ`` by default).
    :param build: allow building FerretDB with Go (mongo-java-server with Maven) when
        no build is found.
    :param log: where progress lines go (stderr by default).
    :raises ServerUnavailable: no way to provide a server, or it failed to start.
    """
    env = os.environ if env is None else env
    order = selected_kinds(env, kinds)
    why = ""
    if "uri" in order:
        uri = env.get(URI_ENV)
        if uri:
            return _use_uri(uri, credentials)
        why = f"{URI_ENV} is not set"
    if "mongod" in order:
        mongod = shutil.which("mongod", path=env.get("PATH"))
        if mongod:
            return _start_mongod(mongod, credentials, env, log)
        why = "no `mongod` on PATH"
    if "ferretdb" in order:
        binary = find_ferretdb(env)
        if binary is None and build and shutil.which("go", path=env.get("PATH")) is not None:
            binary = build_ferretdb(env=env, log=log)
        if binary is not None:
            return _start_ferretdb(binary, credentials, env, log)
        why = "no FerretDB 1.24 binary and no `go` to build one"
    if "mongo-java-server" in order:
        from alley.testing import mongo_java_server as mjs

        folder = mjs.find_mongo_java_server(env)
        if folder is None and not build:
            why = f"mongo-java-server is not built in {mjs.mongo_java_server_cache_dir(env)}"
        else:
            folder = folder or mjs.build_mongo_java_server(env=env, log=log)
            return mjs.start_mongo_java_server(folder, credentials=credentials, env=env, log=log)
    raise ServerUnavailable(_unavailable(order, env, why if len(order) == 1 else ""))


@contextlib.contextmanager
def provide_server(
    *,
    kinds: Collection[ServerKind] | None = None,
    credentials: Credentials | None = None,
    env: Mapping[str, str] | None = None,
    build: bool = True,
    log: Log = _default_log,
) -> Iterator[Server]:
    """Context manager around :func:`start_server` that always stops the server."""
    server = start_server(kinds=kinds, credentials=credentials, env=env, build=build, log=log)
    try:
        yield server
    finally:
        server.stop()
