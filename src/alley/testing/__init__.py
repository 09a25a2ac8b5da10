"""A real MongoDB-wire-compatible server for tests: ``provide_server()`` and a pytest plugin.

Importing this package imports only the standard library; see ``docs/testing.md``.
"""

from __future__ import annotations

from alley.testing.capabilities import Capabilities
from alley.testing.server import (
    ALL_KINDS,
    DEFAULT_KINDS,
    FERRETDB_VERSION,
    SERVER_ENV,
    URI_ENV,
    Credentials,
    Server,
    ServerKind,
    ServerUnavailable,
    build_ferretdb,
    ferretdb_cache_path,
    find_ferretdb,
    provide_server,
    selected_kinds,
    start_server,
    uri_with_database,
)

__all__ = [
    "ALL_KINDS",
    "DEFAULT_KINDS",
    "FERRETDB_VERSION",
    "SERVER_ENV",
    "URI_ENV",
    "Capabilities",
    "Credentials",
    "Server",
    "ServerKind",
    "ServerUnavailable",
    "build_ferretdb",
    "ferretdb_cache_path",
    "find_ferretdb",
    "provide_server",
    "selected_kinds",
    "start_server",
    "uri_with_database",
]
