"""``python -m alley.testing``: provide a server by the test rules and keep it up.

The kind of server follows ``ALLEY_TEST_SERVER`` (or ``--server``) like the tests do.

In the foreground (the default) it prints ``ALLEY_TEST_MONGODB_URI=<uri>`` and
``ALLEY_URL=<uri>`` on stdout (so another shell can ``export`` either), then a human line
on stderr, and stays up until Ctrl-C or SIGTERM, then stops the server and exits 0.

``--detach`` starts that same foreground process in a session of its own, waits until
its server answers, prints ``export`` lines for a shell to ``eval`` and returns; the
background server is recorded in a state file and ``--stop`` stops it. That makes the
quick start copy-pasteable: no port to copy, and nothing runs before the server is up.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import FrameType
from typing import NamedTuple

from alley.testing.server import (
    ALL_KINDS,
    SERVER_ENV,
    Credentials,
    ServerKind,
    ServerUnavailable,
    cache_root,
    start_server,
    uri_with_database,
)

#: Overrides where ``--detach`` records its background server (default: in the cache).
STATE_FILE_ENV = "ALLEY_TESTING_STATE_FILE"
STOP_TIMEOUT_S = 30.0


def state_file() -> Path:
    """Where the background server of ``--detach`` is recorded."""
    override = os.environ.get(STATE_FILE_ENV)
    return Path(override) if override else cache_root() / "background-server.json"


def main(argv: list[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m alley.testing",
        description="Start a MongoDB-wire-compatible server the way alley's tests do.",
    )
    parser.add_argument("--username", help="start with authentication and this user")
    parser.add_argument("--password", help="password of --username")
    parser.add_argument("--auth-database", default="admin", help="database of the user")
    parser.add_argument(
        "--server",
        choices=ALL_KINDS,
        help=f"the kind of server (default: ${SERVER_ENV}, else uri, mongod, ferretdb)",
    )
    parser.add_argument(
        "--database",
        metavar="NAME",
        help="put this database in the printed URIs (credentials keep their authSource)",
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument(
        "--detach",
        action="store_true",
        help="start the server in the background once it answers, print 'export' lines "
        'for eval "$(...)", and return',
    )
    mode.add_argument("--stop", action="store_true", help="stop the server of --detach")
    args = parser.parse_args(argv)
    credentials = None
    if args.username or args.password:
        if not (args.username and args.password):
            parser.error("--username and --password go together")
        credentials = Credentials(args.username, args.password, args.auth_database)
    if args.stop:
        return stop_background()
    if args.detach:
        return detach(args)
    return serve(args, credentials)


def serve(args: argparse.Namespace, credentials: Credentials | None) -> int:
    """Start a server, print its URIs, and keep it up until SIGINT or SIGTERM."""
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        kinds: tuple[ServerKind, ...] | None = (args.server,) if args.server else None
        server = start_server(kinds=kinds, credentials=credentials)
    except ServerUnavailable as exc:
        print(f"alley.testing: {exc}", file=sys.stderr)
        return 1
    try:
        uri = uri_with_database(server.uri, args.database) if args.database else server.uri
        print(f"ALLEY_TEST_MONGODB_URI={uri}")
        print(f"ALLEY_URL={uri}", flush=True)
        print(
            f"alley.testing: {server.description} is up; Ctrl-C stops it",
            file=sys.stderr,
            flush=True,
        )
        while not stop.wait(0.5):
            pass
    finally:
        server.stop()
    print("alley.testing: stopped", file=sys.stderr, flush=True)
    return 0


def detach(args: argparse.Namespace) -> int:
    """Start ``serve`` in a new session, wait for its URIs, print ``export`` lines."""
    state = state_file()
    running = _read_state(state)
    if running is not None and _alive(running.pid):
        print(
            f"alley.testing: a background server is already up (pid {running.pid}); "
            "'python -m alley.testing --stop' stops it",
            file=sys.stderr,
        )
        return _print_exports(running.uri, args.database)

    state.parent.mkdir(parents=True, exist_ok=True)
    log = state.with_suffix(".log")
    argv = [sys.executable, "-m", "alley.testing"]
    for option in ("username", "password", "auth_database", "server"):
        value = getattr(args, option)
        if value is not None and (option != "auth_database" or args.username):
            argv += [f"--{option.replace('_', '-')}", value]
    with log.open("w", encoding="utf-8") as log_file:
        process = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=log_file,
            text=True,
            start_new_session=True,  # Ctrl-C in the shell, or its exit, leaves it running
        )
    assert process.stdout is not None
    uris = {}
    for line in process.stdout:  # ends when the server is up, or when the child exits
        name, _, value = line.strip().partition("=")
        uris[name] = value
        if "ALLEY_URL" in uris:
            break
    process.stdout.close()  # it prints nothing more on stdout
    if "ALLEY_URL" not in uris:
        process.wait()
        print(log.read_text(encoding="utf-8").strip(), file=sys.stderr)
        return 1
    state.write_text(json.dumps({"pid": process.pid, "uri": uris["ALLEY_URL"]}), "utf-8")
    state.chmod(0o600)  # the URI may carry a password
    print(
        f"alley.testing: a server is up in the background (pid {process.pid}, log {log}); "
        "'python -m alley.testing --stop' stops it",
        file=sys.stderr,
    )
    return _print_exports(uris["ALLEY_URL"], args.database)


def _print_exports(uri: str, database: str | None) -> int:
    if database:
        uri = uri_with_database(uri, database)
    print(f"export ALLEY_TEST_MONGODB_URI={shlex.quote(uri)}")
    print(f"export ALLEY_URL={shlex.quote(uri)}", flush=True)
    return 0


def stop_background() -> int:
    """Stop the server ``--detach`` started (SIGTERM; it stops its server and exits)."""
    state = state_file()
    running = _read_state(state)
    if running is None or not _alive(running.pid):
        state.unlink(missing_ok=True)
        print("alley.testing: no background server is running", file=sys.stderr)
        return 1
    pid = running.pid
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT_S
    # Not our child, so there is nothing to wait() on: poll until the pid is gone.
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    if _alive(pid):
        print(f"alley.testing: pid {pid} did not stop within {STOP_TIMEOUT_S:g}s", file=sys.stderr)
        return 1
    state.unlink(missing_ok=True)
    print(f"alley.testing: stopped the background server (pid {pid})", file=sys.stderr)
    return 0


class Background(NamedTuple):
    """The server ``--detach`` left running: its foreground process and URI."""

    pid: int
    uri: str


def _read_state(state: Path) -> Background | None:
    try:
        data = json.loads(state.read_text(encoding="utf-8"))
        return Background(int(data["pid"]), str(data["uri"]))
    except (OSError, ValueError, TypeError, KeyError):
        return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    # A zombie (exited, not yet reaped) still answers kill 0; its state says so.
    try:
        status = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return status != "Z"


if __name__ == "__main__":
    sys.exit(main())
