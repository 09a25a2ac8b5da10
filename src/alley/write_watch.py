"""Which writes a migration's code sent, from PyMongo's command monitoring.

A failed step that wrote nothing can simply run again; one that wrote something may
not (it would apply part of itself twice). The client alley hands a migration can
tell: a :class:`pymongo.monitoring.CommandListener` registered before the client is
made sees every command it sends. Only commands sent from the thread running the
migration, while it runs, are counted (the heartbeat and the store use other threads
or other moments), and any command that is not a known read counts as a write.

A client made before the listener was registered (``Migrations(path, db)`` with an
application's own client) cannot tell: its steps count as having written (``None``).
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pymongo.monitoring import CommandStartedEvent

# Commands that never change data. Anything else a migration sends is a write.
READS = frozenset(
    {
        "find", "getMore", "count", "distinct", "listCollections", "listIndexes",
        "listDatabases", "ping", "hello", "isMaster", "ismaster", "buildInfo", "buildinfo",
        "dbStats", "collStats", "serverStatus", "explain", "killCursors", "endSessions",
        "saslStart", "saslContinue", "authenticate", "getnonce", "connectionStatus",
        "getParameter", "getLog", "hostInfo", "whatsmyuri", "listCommands", "dataSize",
    }
)  # fmt: skip
_OUTPUT_STAGES = ("$out", "$merge")


class Writes:
    """What one step's code sent: a count per ``command collection``."""

    def __init__(self) -> None:
        self.commands: Counter[str] = Counter()
        self.known = True
        self.helper_commands = 0
        self._paused = 0

    @contextmanager
    def paused(self) -> Iterator[None]:
        """Commands sent in this block are alley's batch helpers' own (their batches and
        checkpoints, :mod:`alley.data`): counted apart, not as the step's writes."""
        self._paused += 1
        try:
            yield
        finally:
            self._paused -= 1

    def add(self, command: str) -> None:
        if self._paused:
            self.helper_commands += 1
        else:
            self.commands[command] += 1

    @property
    def count(self) -> int | None:
        return sum(self.commands.values()) if self.known else None

    def describe(self) -> str:
        if not self.known:
            return "unknown (the client was made before alley could watch it)"
        if not self.commands:
            return "nothing"
        return ", ".join(f"{name} x{n}" if n > 1 else name for name, n in self.commands.items())


def _is_write(name: str, command: Any) -> bool:
    if name in READS:
        return False
    if name == "aggregate":
        pipeline = command.get("pipeline") or []
        return bool(pipeline) and any(stage in pipeline[-1] for stage in _OUTPUT_STAGES)
    return True


def _listener_base() -> type:
    from pymongo.monitoring import CommandListener

    return CommandListener


class _Watcher:
    """The one listener of this process; counts into the step each thread watches
    (a multi-database command runs several steps at once, one per thread)."""

    def __init__(self) -> None:
        self._watching: dict[int, Writes] = {}

    def started(self, event: CommandStartedEvent) -> None:
        writes = self._watching.get(threading.get_ident())
        if writes is None:
            return
        name = event.command_name
        if _is_write(name, event.command):
            target = event.command.get(name)
            where = f" {target}" if isinstance(target, str) else ""
            writes.add(f"{name}{where}")

    def succeeded(self, event: Any) -> None:
        pass

    def failed(self, event: Any) -> None:
        pass

    @contextmanager
    def watch(self, db: Any) -> Iterator[Writes]:
        writes = Writes()
        writes.known = self.sees(db)
        thread = threading.get_ident()
        self._watching[thread] = writes
        try:
            yield writes
        finally:
            del self._watching[thread]

    def sees(self, db: Any) -> bool:
        client = getattr(db, "client", None)
        options = getattr(client, "options", None)
        listeners = getattr(options, "event_listeners", None) or ()
        return any(listener is self for listener in listeners)


# The one listener of this process, once registered.
_installed: list[Any] = []
_install_lock = threading.Lock()


def install() -> None:
    """Register the listener once per process; clients made afterwards report to it."""
    with _install_lock:
        if _installed:
            return
        from pymongo import monitoring

        cls = type("AlleyWriteWatcher", (_Watcher, _listener_base()), {})
        _installed.append(cls())
        monitoring.register(_installed[0])


@contextmanager
def watch(db: Any) -> Iterator[Writes]:
    """Count the writes this thread sends through ``db``'s client while in the block."""
    if not _installed:
        writes = Writes()
        writes.known = False
        yield writes
        return
    with _installed[0].watch(db) as writes:
        yield writes
