"""Commands over many databases: each one as if alley had been run once per database.

A *fleet* command (``alley --databases 'tenant_*' up``) connects once, asks the
``alley_databases`` hook which databases it targets, then runs the single-database
command (:mod:`alley.api`) on each, ``jobs`` at a time in threads. Each database keeps
its own history and its own lock; what one does never changes what another does, and
one failing does not stop the others unless ``fail_fast`` is set (then the databases
not yet started are reported ``not run``). The result is one :class:`FleetReport`: an
outcome per database and an exit code, the worst of theirs (:data:`SEVERITY`).

Threads, not processes: a migration run is mostly waiting for the server, and threads
share one connection pool, one plugin manager and one discovery of the migrations
(measured in ``docs/benchmarks.md``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any

from alley import write_watch
from alley.api import failed_run
from alley.engine import Engine
from alley.errors import AlleyError, ConfigError, ExitCode, LockBusy, Terminated, UsageError
from alley.settings import Settings

#: Exit codes from the least to the most severe: a fleet exits with its worst.
SEVERITY: tuple[int, ...] = (
    ExitCode.OK,
    ExitCode.PENDING,
    ExitCode.LOCK_BUSY,
    ExitCode.MIGRATION_FAILED,
    ExitCode.INTEGRITY,
    ExitCode.LEASE_LOST,
    ExitCode.CONNECTION,
    ExitCode.PLUGIN,
    ExitCode.CONFIG,
    ExitCode.USAGE,
    ExitCode.INTERNAL,
    ExitCode.INTERRUPTED,
    ExitCode.TERMINATED,
)

#: The commands that run over many databases.
COMMANDS = ("status", "up", "down", "verify", "check", "plan_up", "plan_down")


@dataclass(frozen=True)
class DatabaseOutcome:
    """What a command did on one database.

    :ivar result: ``applied``, ``rolled back``, ``up to date``, ``pending``, ``ok``,
        ``problems``, ``differs`` (``check``), ``failed``, ``locked``, ``error`` or ``not run``.
    :ivar report: The single-database command's report; when it raised, the
        :class:`alley.api.FailedRun` of ``up``/``down`` (the steps that ran before), or
        ``None``.
    :ivar error: The error's one line, when it raised.
    """

    database: str
    result: str
    exit_code: int
    duration_s: float
    report: Any = None
    error: str | None = None


@dataclass(frozen=True)
class FleetReport:
    """A command over many databases: an outcome per database, in the targets' order."""

    command: str
    outcomes: tuple[DatabaseOutcome, ...]
    jobs: int
    duration_s: float
    notes: tuple[str, ...] = ()
    #: 130 (Ctrl-C) or 143 (SIGTERM) when that stopped the command: no database
    #: started after it, and those running finished.
    stopped: int | None = None

    @property
    def exit_code(self) -> int:
        """The worst exit code of the databases (:data:`SEVERITY`), or of the stop."""
        codes = [o.exit_code for o in self.outcomes] + [self.stopped or 0]
        return max(codes, key=_severity)

    def count(self) -> dict[str, int]:
        """How many databases ended in each result, most frequent first."""
        counts: dict[str, int] = {}
        for outcome in self.outcomes:
            counts[outcome.result] = counts.get(outcome.result, 0) + 1
        return dict(sorted(counts.items(), key=lambda item: -item[1]))


def _severity(code: int) -> int:
    return SEVERITY.index(code) if code in SEVERITY else len(SEVERITY)


#: Called with each database's outcome as it ends (the CLI prints a line).
OutcomeCallback = Callable[[DatabaseOutcome], None]


@dataclass
class _Fleet:
    settings: Settings
    command: str
    call: Callable[..., Any]
    arguments: Mapping[str, Any]
    on_outcome: OutcomeCallback | None
    fail_fast: bool
    on_stop: Callable[[int], None] | None = None
    stop: threading.Event = field(default_factory=threading.Event)

    def one(self, base: Engine, database: str) -> DatabaseOutcome:
        """The command on ``database``, its errors turned into its outcome."""
        began = time.perf_counter()
        if self.stop.is_set():
            return DatabaseOutcome(database, "not run", ExitCode.OK, 0.0)
        engine = Engine(
            self.settings.for_database(database),
            db=base.db.client[database],
            hooks=base.hooks,
            migrations=base.migrations,
        )
        try:
            report = self.call(engine.settings, project=engine, **self.arguments)
        except AlleyError as error:
            outcome = DatabaseOutcome(
                database,
                "locked" if isinstance(error, LockBusy) else _failed(error),
                int(error.exit_code),
                time.perf_counter() - began,
                # What ran before the error (up/down): its steps and notes.
                report=failed_run(error),
                error=str(error),
            )
        except Exception as error:  # a bug: reported on its database, the others go on
            outcome = DatabaseOutcome(
                database,
                "error",
                ExitCode.INTERNAL,
                time.perf_counter() - began,
                error=f"{type(error).__name__}: {error}",
            )
        else:
            result, code = _result(self.command, report, check=bool(self.arguments.get("check")))
            outcome = DatabaseOutcome(database, result, code, time.perf_counter() - began, report)
        if self.fail_fast and outcome.exit_code not in (ExitCode.OK, ExitCode.PENDING):
            self.stop.set()
        if self.on_outcome is not None:
            self.on_outcome(outcome)
        return outcome


def _failed(error: AlleyError) -> str:
    return "failed" if error.exit_code is ExitCode.MIGRATION_FAILED else "error"


def _result(command: str, report: Any, *, check: bool = False) -> tuple[str, int]:
    """A report's result word and exit code (``status --check``: pending is exit 7)."""
    if command in ("up", "down"):
        if not report.steps:
            return "up to date" if command == "up" else "nothing to roll back", ExitCode.OK
        return ("applied" if command == "up" else "rolled back"), ExitCode.OK
    if command == "verify":
        return ("problems", ExitCode.INTEGRITY) if report.problems else ("ok", ExitCode.OK)
    if command == "check":
        return ("ok", ExitCode.OK) if report.ok else ("differs", ExitCode.INTEGRITY)
    if command in ("plan_up", "plan_down"):
        return ("pending", ExitCode.PENDING) if report.plan else ("up to date", ExitCode.OK)
    # status
    if report.pending:
        return "pending", ExitCode.PENDING if check else ExitCode.OK
    return "up to date", ExitCode.OK


def run(
    settings: Settings,
    command: str,
    *,
    jobs: int | None = None,
    fail_fast: bool = False,
    on_outcome: OutcomeCallback | None = None,
    on_stop: Callable[[int], None] | None = None,
    project: Engine | None = None,
    **arguments: Any,
) -> FleetReport:
    """Run the API function ``command`` (one of :data:`COMMANDS`) on every database of
    ``settings.databases``, ``jobs`` at a time.

    :param arguments: The command's own arguments (``target=``, ``check=``, ...).
    :param on_outcome: Called (from the database's thread) as each database ends.
    :param on_stop: Called with the number of databases still running when Ctrl-C or
        SIGTERM stops the command (which then waits for them).
    :param project: An engine of ``settings`` to connect and discover with (the API
        passes one to reuse a connection).
    :raises ConfigError: no database matched, or ``jobs`` below 1.
    :raises UsageError: a command that does not run over many databases.
    """
    from alley import api

    if command not in COMMANDS:
        raise UsageError(
            f"'{command}' works on one database: give -db NAME",
            hint=f"over many databases: {', '.join(c for c in COMMANDS if '_' not in c)}",
        )
    jobs = settings.jobs if jobs is None else jobs
    if jobs < 1:
        raise ConfigError(f"invalid jobs {jobs!r}: it must be 1 or more")
    began = time.perf_counter()
    base = project or Engine(_connect_settings(settings))
    write_watch.install()  # before the client exists (base.db connects)
    with base.attributed():
        targets = base.hooks.databases(settings, base.db.client)
        base.migrations  # noqa: B018 -- discovered once, here: its errors are the command's
        if command == "check":  # the models too: a module that does not import is one error
            from alley import autogenerate

            names = autogenerate.model_modules(settings, arguments.get("models"))
            autogenerate.declared(settings, names)
    if not targets:
        raise ConfigError(
            f"no database matches databases {', '.join(settings.databases)}",
            hint="check the names and patterns (alley lists databases that exist)",
        )
    fleet = _Fleet(
        settings, command, getattr(api, command), arguments, on_outcome, fail_fast, on_stop
    )
    outcomes, stopped = _run_all(fleet, base, targets, jobs)
    return FleetReport(
        command,
        tuple(outcomes[name] for name in targets),
        min(jobs, len(targets)),
        time.perf_counter() - began,
        tuple(base.notes),
        stopped,
    )


def _connect_settings(settings: Settings) -> Settings:
    """Settings to connect with: no database of their own (``admin``, which every user
    may ``ping``; the targets are chosen after connecting)."""
    return settings.for_database("admin")


def _run_all(
    fleet: _Fleet, base: Engine, targets: list[str], jobs: int
) -> tuple[dict[str, DatabaseOutcome], int | None]:
    """Every target's outcome, and the exit code of a Ctrl-C (130) or SIGTERM (143)
    that stopped the command: then no database starts (``not run``), and those running
    finish their migrations under their own locks (stopping one mid-step would leave it
    for a person to decide). A second Ctrl-C is raised, once they have finished."""
    outcomes: dict[str, DatabaseOutcome] = {}
    stopped: int | None = None
    with ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="alley-db") as pool:
        futures = {pool.submit(fleet.one, base, name): name for name in targets}
        pending: set[Future[DatabaseOutcome]] = set(futures)
        while pending:
            try:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
            except KeyboardInterrupt as interruption:
                if stopped is not None:
                    raise
                fleet.stop.set()
                stopped = (
                    ExitCode.TERMINATED
                    if isinstance(interruption, Terminated)
                    else (ExitCode.INTERRUPTED)
                )
                if fleet.on_stop is not None:
                    fleet.on_stop(sum(1 for f in pending if f.running()))
                continue
            for future in done:
                outcomes[futures[future]] = future.result()
    return outcomes, stopped
