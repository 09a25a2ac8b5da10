"""Run the ``alley`` command with botocore event hooks, for the tests.

``python counting_alley.py ARGS...`` is ``alley ARGS...``, plus:

- the S3 requests it sends (each attempt, by operation) are written as JSON to the
  file named by ``COUNT_S3_REQUESTS_TO``;
- with ``KILL_PID_BEFORE_FIRST_GET`` set, that process (the S3 server) is killed right
  after the listing, before the first object is read, and the request waits until the
  server's port refuses connections: the service goes away between listing and reading.

The hooks are registered on boto3's default session, from which the plugin makes its
client, so nothing in the plugin knows about them.
"""

from __future__ import annotations

import atexit
import json
import os
import signal
import socket
import threading
import time
from typing import Any
from urllib.parse import urlsplit

import boto3

from alley.entry import run

counts: dict[str, int] = {}
lock = threading.Lock()
boto3.setup_default_session()
assert boto3.DEFAULT_SESSION is not None
events = boto3.DEFAULT_SESSION.events


def count(event_name: str, **_: Any) -> None:
    operation = event_name.rsplit(".", 1)[-1]
    with lock:
        counts[operation] = counts.get(operation, 0) + 1


def write_counts() -> None:
    with open(os.environ["COUNT_S3_REQUESTS_TO"], "w") as handle:
        json.dump(counts, handle)


def kill_server_once(**_: Any) -> None:
    with lock:
        pid = os.environ.pop("KILL_PID_BEFORE_FIRST_GET", None)
        if pid is None:
            return
        os.kill(int(pid), signal.SIGKILL)
        endpoint = urlsplit(os.environ["AWS_ENDPOINT_URL"])
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection((endpoint.hostname, endpoint.port), timeout=1).close()
            except OSError:
                return
            time.sleep(0.01)  # polling the port, with a deadline
        raise AssertionError("the S3 server still accepts connections 10 s after SIGKILL")


if "COUNT_S3_REQUESTS_TO" in os.environ:
    events.register("before-send.s3", count)
    atexit.register(write_counts)
if "KILL_PID_BEFORE_FIRST_GET" in os.environ:
    events.register("before-call.s3.GetObject", kill_server_once)

run()
