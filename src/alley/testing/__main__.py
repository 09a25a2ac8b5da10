"""``python -m alley.testing``: provide a server by the test rules and keep it up.

The kind of server follows ``ALLEY_TEST_SERVER`` (or ``--server``) like the tests do.
Prints ``ALLEY_TEST_MONGODB_URI=<uri>`` and ``ALLEY_URL=<uri>`` on stdout (so another
shell can ``export`` either), then a human line on stderr, and stays up until Ctrl-C or
SIGTERM, then stops the server and exits 0.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from types import FrameType

from alley.testing.server import (
    ALL_KINDS,
    SERVER_ENV,
    Credentials,
    ServerKind,
    ServerUnavailable,
    start_server,
)


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
    args = parser.parse_args(argv)
    credentials = None
    if args.username or args.password:
        if not (args.username and args.password):
            parser.error("--username and --password go together")
        credentials = Credentials(args.username, args.password, args.auth_database)

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
        print(f"ALLEY_TEST_MONGODB_URI={server.uri}")
        print(f"ALLEY_URL={server.uri}", flush=True)
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


if __name__ == "__main__":
    sys.exit(main())
