"""Every error alley raises on purpose, each kind carrying its exit code.

The CLI entry point is the one place that turns these into messages and exit codes;
everything below it raises and never exits.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """The documented exit codes of the `alley` command (docs/exit-codes.md)."""

    OK = 0
    MIGRATION_FAILED = 1
    USAGE = 2
    CONFIG = 3
    CONNECTION = 4
    LOCK_BUSY = 5
    INTEGRITY = 6
    PENDING = 7
    PLUGIN = 8
    LEASE_LOST = 9
    INTERNAL = 70
    INTERRUPTED = 130
    TERMINATED = 143


class Terminated(KeyboardInterrupt):
    """SIGTERM reached the ``alley`` command (a deploy system stopping it): it stops as
    at Ctrl-C (the step in progress is logged interrupted, the lock released) and
    exits 143."""


class AlleyError(Exception):
    """Base of alley's errors: a one-line message that says what happened and what to do."""

    exit_code: ExitCode = ExitCode.INTERNAL

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


class UsageError(AlleyError):
    """Bad arguments: unknown or non-numeric target, a target in the wrong state."""

    exit_code = ExitCode.USAGE


class ConfigError(AlleyError):
    """Bad settings or project layout: PATH missing, a bad pyproject.toml, a malformed URL."""

    exit_code = ExitCode.CONFIG


class DiscoveryError(ConfigError):
    """The migrations cannot be read: no folder, duplicate ids, a file that does not compile."""


class MigrationsFolderMissing(DiscoveryError):
    """The migrations folder does not exist yet (`create` makes it; other commands fail)."""


class ConnectionFailed(AlleyError):
    """The server is unreachable or refused the credentials."""

    exit_code = ExitCode.CONNECTION


class MigrationFailed(AlleyError):
    """A migration's own code raised; nothing after it ran and it was not recorded."""

    exit_code = ExitCode.MIGRATION_FAILED

    def __init__(self, message: str, *, cause: BaseException | None = None) -> None:
        super().__init__(message)
        self.cause = cause


class LockBusy(AlleyError):
    """Another alley process holds the lock."""

    exit_code = ExitCode.LOCK_BUSY


class IntegrityError(AlleyError):
    """History and files disagree: a deleted or edited applied file, out-of-order ids."""

    exit_code = ExitCode.INTEGRITY


class MigrationsPending(AlleyError):
    """Migrations are pending where a command needs the database up to date
    (``create --autogenerate`` would write their indexes again): exit 7."""

    exit_code = ExitCode.PENDING


class PluginError(AlleyError):
    """A plugin failed to load, declared an unknown hook, or raised inside a hook."""

    exit_code = ExitCode.PLUGIN


class DataMigrationError(AlleyError):
    """A data helper (:mod:`alley.indexes`, :mod:`alley.data`) refused before it wrote.

    Raised inside a migration it fails that migration (exit 1, like any error the
    migration raises); raised by the functions called directly, it exits 1 too.
    """

    exit_code = ExitCode.MIGRATION_FAILED


class IndexConflict(DataMigrationError):
    """An index with the requested name (or keys) exists with other keys or options;
    nothing was built or dropped."""


class DuplicateKeys(DataMigrationError):
    """A unique index was asked for on a collection whose documents repeat its keys;
    nothing was built. ``keys`` are the first duplicate key values, ``count`` how many
    documents share them."""

    def __init__(
        self, message: str, *, keys: dict[str, object], count: int, hint: str | None = None
    ) -> None:
        super().__init__(message, hint=hint)
        self.keys = keys
        self.count = count


class IndexUnsupported(DataMigrationError):
    """The server refused, or silently ignored, an index option (FerretDB 1.24 has no
    TTL, partial or collation indexes and ignores ``sparse``); nothing is left built."""


class AlleyWarning(UserWarning):
    """Something the user should see but that does not stop the command.

    Plugins emit these with :func:`warnings.warn`; the API collects them into the
    report's ``warnings`` and the CLI prints them.
    """


class SourceMissing(AlleyWarning):
    """A discovery plugin's source does not exist (e.g. no ``migrations/`` folder).

    Discovery is collect-all, so one missing source must not hide the others: a plugin
    warns with this instead of raising. Only when no plugin found any migration does the
    first of these become a :class:`MigrationsFolderMissing` error.
    """

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
