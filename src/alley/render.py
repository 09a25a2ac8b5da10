"""Everything the CLI shows: plain lines for logs and pipes, a table on a terminal, JSON.

The API returns reports; only this module turns them into text. rich is imported only
when a table is drawn on a terminal.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import os
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from alley.model import (
    Attempt,
    BatchProgress,
    Drift,
    LockState,
    LogEntry,
    MigrationStatus,
    PluginInfo,
    StatusReport,
    StepResult,
)

if TYPE_CHECKING:
    from alley.settings import Settings


def to_jsonable(value: Any) -> Any:
    """Reports as JSON-ready data: dataclasses to dicts, datetimes to ISO 8601."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_jsonable(v) for v in value]
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return str(value)


def print_json(data: Any, out: TextIO | None = None) -> None:
    out = out or sys.stdout
    json.dump(to_jsonable(data), out, indent=2, sort_keys=True)
    out.write("\n")


def location(settings: Settings, found: Sequence[MigrationStatus] = ()) -> dict[str, str | None]:
    """Where a command looks: the migrations' folder (or folders: where the migrations
    in ``found`` came from, whichever plugin found them; with none, the filesystem
    folder the settings name), the server (never its password) and the database."""
    from alley.settings import DEFAULT_DATABASE

    return {
        "folder": _sources(settings, found),
        "server": settings.redacted_target(),
        # Unnamed anywhere, the connection uses 0.0.3's default (and warns).
        "database": settings.database_name or DEFAULT_DATABASE,
    }


def _sources(settings: Settings, found: Sequence[MigrationStatus]) -> str | None:
    """The folders (``s3://bucket/prefix/`` too) the found migrations' locations are in,
    in order, comma-separated."""
    folders = [
        s.migration.location[: -len(s.migration.filename)].rstrip("/\\") or "."
        for s in found
        if s.migration is not None and s.migration.location.endswith(s.migration.filename)
    ]
    if folders:
        return ", ".join(dict.fromkeys(folders))
    from alley_plugins.filesystem import migrations_folder

    folder = migrations_folder(settings)
    return str(folder.resolve()) if folder is not None else None


def location_line(settings: Settings, found: Sequence[MigrationStatus] = ()) -> str:
    """``migrations: FOLDER · server: HOST:PORT · database: NAME``, the header of
    ``status`` and, with ``--verbose``, the first line on stderr of every command that
    touches the database."""
    where = location(settings, found)
    return (
        f"migrations: {where['folder'] or '(none found)'} · server: {where['server']} · "
        f"database: {where['database']}"
    )


def status_data(report: StatusReport, settings: Settings | None = None) -> dict[str, Any]:
    """The JSON shape of ``status``: one entry per migration, plus counts and notes,
    and where it looked (``folder``, ``server``, ``database``) given the settings."""
    return {
        **(location(settings, report.statuses) if settings is not None else {}),
        "migrations": [
            {
                "id": s.id,
                "filename": _filename(s),
                "recorded_filename": s.record.filename if s.record else None,
                "state": s.state.value,
                "applied_at": _iso(s.applied_at),
                "drift": s.drift.value if s.drift else None,
                "location": s.migration.location if s.migration else None,
                "checksum": s.migration.checksum if s.migration else None,
                "recorded_checksum": s.record.checksum if s.record else None,
                "attempt": s.attempt.value if s.attempt else None,
                "imported_from": s.record.extra.get("imported_from") if s.record else None,
            }
            for s in report.statuses
        ],
        "applied": len(report.applied),
        "pending": len(report.pending),
        "notes": list(report.notes),
    }


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def notes(messages: Sequence[str], err: TextIO | None = None) -> None:
    err = err or sys.stderr
    for message in messages:
        err.write(f"alley: warning: {message}\n")


def _date(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S UTC") if value else ""


def _note(status: MigrationStatus) -> str:
    notes = []
    imported = status.record.extra.get("imported_from") if status.record else None
    if imported:
        assert status.record is not None
        notes.append(f"imported from {imported} ({status.record.extra.get('imported_entry')})")
    if status.drift is Drift.RENAMED and status.migration is not None:
        notes.append(f"renamed: recorded as {status.record.filename if status.record else '?'}")
    elif status.drift is Drift.DELETED:
        notes.append("file deleted")
    elif status.drift is Drift.CHANGED:
        notes.append("file changed since applied")
    entry = status.attempt_entry
    if status.attempt is Attempt.INTERRUPTED and entry is not None:
        notes.append(
            f"INTERRUPTED during {entry.direction} at {_date(entry.at)} on {entry.holder.host}"
            f" (pid {entry.holder.pid}): run 'alley mark {status.id} --applied|--pending'"
        )
    elif status.attempt is Attempt.RUNNING:
        notes.append("running now")
    elif status.attempt is Attempt.RESUMABLE and entry is not None:
        done = entry.checkpointed_done
        notes.append(
            f"stopped during {entry.direction} at {_date(entry.at)} after {done} "
            f"document{'s' if done != 1 else ''}: the next 'alley {entry.direction}' resumes it"
        )
    elif status.attempt is Attempt.FAILED and entry is not None:
        notes.append(f"last {entry.direction} failed at {_date(entry.at)}; it wrote nothing")
    elif status.attempt is Attempt.FAILED_AFTER_WRITING and entry is not None:
        wrote = (entry.error or "").rpartition("; it wrote ")[2] or "something"
        notes.append(
            f"FAILED during {entry.direction} at {_date(entry.at)} after it wrote {wrote}: "
            f"run 'alley {entry.direction} --retry' or 'alley mark {status.id} --applied|--pending'"
        )
    return "; ".join(notes)


def _filename(status: MigrationStatus) -> str:
    return status.migration.filename if status.migration else status.filename


def status_report(
    report: StatusReport, out: TextIO | None = None, header: str | None = None
) -> None:
    """``header`` (where it looked), then one line per migration (``applied``/``pending``,
    filename, date, notes), then a total."""
    out = out or sys.stdout
    if header is not None:
        out.write(header + "\n")
    if not report.statuses:
        out.write("no migrations\n")
        return
    if out.isatty():
        _status_table(report, out)
    else:
        width = max(len(_filename(s)) for s in report.statuses)
        for status in report.statuses:
            columns = [f"{status.state.value:<8}", f"{_filename(status):<{width}}"]
            columns += [_date(status.applied_at), _note(status)]
            out.write("  ".join(columns).rstrip() + "\n")
    out.write(f"{len(report.applied)} applied, {len(report.pending)} pending\n")


def _status_table(report: StatusReport, out: TextIO) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(box=None, pad_edge=False)
    for column in ("state", "migration", "applied at", "note"):
        table.add_column(column)
    for status in report.statuses:
        style = "green" if status.state.value == "applied" else "yellow"
        table.add_row(
            f"[{style}]{status.state.value}[/]",
            _filename(status),
            _date(status.applied_at),
            f"[red]{_note(status)}[/]" if _note(status) else "",
        )
    Console(file=out).print(table)


PROGRESS_INTERVAL_S = 5.0
"""Off a terminal, at most one progress line per step this often (seconds);
``ALLEY_PROGRESS_INTERVAL`` changes it."""


def progress_interval(environ: Mapping[str, str] | None = None) -> float:
    """``ALLEY_PROGRESS_INTERVAL`` (seconds, 0 or more) if set and valid, else 5."""
    raw = (os.environ if environ is None else environ).get("ALLEY_PROGRESS_INTERVAL", "")
    try:
        value = float(raw)
    except ValueError:
        return PROGRESS_INTERVAL_S
    return value if 0 <= value < float("inf") else PROGRESS_INTERVAL_S


def backfill_label(event: BatchProgress) -> str:
    """``0003_backfill.py users`` (or the backfill's own name when it was given one)."""
    default = event.name.startswith(f"{event.collection}#") or event.name == event.collection
    return f"{event.filename} {event.collection if default else event.name}"


def duration(seconds: float) -> str:
    """``5s``, ``2m05s``, ``1h02m``: a rounded duration for ETAs."""
    whole = max(0, round(seconds))
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    return f"{whole // 3600}h{whole % 3600 // 60:02d}m"


def batch_line(event: BatchProgress) -> str:
    """``0003_backfill.py users: 40000/100000 (40%) 12000 docs/s, ETA 5s``."""
    parts = [f"{backfill_label(event)}: "]
    if event.total:
        total = max(event.total, event.done)
        parts.append(f"{event.done}/{total} ({event.done * 100 // total}%)")
    else:
        parts.append(f"{event.done} done")
    if event.batch > 0:  # a backfill that has not written yet has no rate
        parts.append(f" {event.rate_per_s:.0f} docs/s")
    if event.eta_s is not None:
        parts.append(f", ETA {duration(event.eta_s)}")
    return "".join(parts)


def backfill_done_line(event: BatchProgress) -> str:
    """``0003_backfill.py users: 100000 done in 8.3s``: the last line of a backfill."""
    return f"{backfill_label(event)}: {event.done} done in {event.elapsed_s:.1f}s"


class Progress:
    """Says when each step starts (``running   0003_backfill.py …``, on stderr); on a
    terminal, also how long it has been running, updated every second until it ends.
    While a step backfills (``step.backfill``), its batches show: on a terminal as a
    progress bar per backfill (done/total, percentage, rate, ETA) in place of the
    elapsed time; off a terminal as one line per step at most every ``interval``
    seconds, and a last line per backfill with its count and time.

    ``start`` is the engine's ``on_start``; ``batch`` its ``on_progress``; ``step`` its
    ``on_step`` (it ends the line, then prints the step's result on stdout); ``stop``
    ends a step that failed. ``clock`` (monotonic seconds) and ``live`` are for tests.
    """

    def __init__(
        self,
        err: TextIO | None = None,
        out: TextIO | None = None,
        *,
        interval: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        live: bool | None = None,
    ) -> None:
        self.err = err or sys.stderr
        self.out = out
        self.live = _isatty(self.err) if live is None else live
        self.interval = progress_interval() if interval is None else interval
        self.clock = clock
        self._line = ""
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None
        self._lock = threading.Lock()
        self._bars: Any = None  # a rich Progress while a step backfills on a terminal
        self._tasks: dict[tuple[str, str], Any] = {}
        self._backfill: BatchProgress | None = None  # the last batch of the current backfill
        self._last_line = 0.0

    def start(self, entry: LogEntry) -> None:
        self.stop()
        verb = {"up": "running", "down": "rolling back"}[entry.direction.value]
        if entry.fake:
            verb = {"up": "recording (fake)", "down": "forgetting (fake)"}[entry.direction.value]
        self._line = f"{verb:<15} {entry.filename} …"
        self._last_line = self.clock()
        if not self.live:
            self.err.write(self._line + "\n")
            self.err.flush()
            return
        self.err.write(self._line)
        self.err.flush()
        self._stop.clear()
        self._ticker = threading.Thread(
            target=self._tick, args=(time.monotonic(),), name="alley-progress", daemon=True
        )
        self._ticker.start()

    def _tick(self, began: float) -> None:
        while not self._stop.wait(1.0):
            with self._lock:
                if self._stop.is_set():
                    return
                self.err.write(f"\r{self._line} {time.monotonic() - began:.0f}s")
                self.err.flush()

    def batch(self, event: BatchProgress) -> None:
        """A backfill started (``batch == 0``), wrote a batch or finished (the
        engine's ``on_progress``)."""
        current = self._backfill
        if current is not None and (current.filename, current.name) != (
            event.filename,
            event.name,
        ):
            self._end_backfill()
        self._backfill = event
        if self.live:
            self._bar(event)
        elif event.batch > 0 and not event.finished:
            now = self.clock()
            if now - self._last_line >= self.interval:
                self._last_line = now
                self.err.write(batch_line(event) + "\n")
                self.err.flush()
        if event.finished:
            self._end_backfill()

    def _bar(self, event: BatchProgress) -> None:
        if self._bars is None:
            self._stop_ticker()
            self._bars = _progress_bars(self.err)
            self._bars.start()
        key = (event.filename, event.name)
        total = max(event.total or 0, event.done) or None
        fields = {
            "rate": f"{event.rate_per_s:.0f} docs/s" if event.batch > 0 else "",
            "eta": f"ETA {duration(event.eta_s)}" if event.eta_s is not None else "",
        }
        if key not in self._tasks:
            self._tasks[key] = self._bars.add_task(
                backfill_label(event), total=total, completed=event.done, **fields
            )
        else:
            self._bars.update(self._tasks[key], total=total, completed=event.done, **fields)

    def _end_backfill(self) -> None:
        """The last line of the backfill that ran: its count and time once finished,
        else (the step failed) where it stopped. On a terminal its bar stays."""
        event, self._backfill = self._backfill, None
        if event is None:
            return
        if self.live:
            task = self._tasks.get((event.filename, event.name))
            if self._bars is not None and task is not None and event.finished:
                self._bars.update(task, eta="", rate=f"done in {event.elapsed_s:.1f}s")
            return
        line = backfill_done_line(event) if event.finished else batch_line(event)
        self.err.write(line + ("" if event.finished else " (stopped)") + "\n")
        self.err.flush()

    def _stop_ticker(self) -> None:
        ticker, self._ticker = self._ticker, None
        if ticker is None:
            return
        with self._lock:
            self._stop.set()
        ticker.join()
        self.err.write("\n")
        self.err.flush()

    def stop(self) -> None:
        """End the live line (or the bars) of the step that was running, if any."""
        self._end_backfill()
        self._stop_ticker()
        bars, self._bars = self._bars, None
        self._tasks = {}
        if bars is not None:
            bars.stop()

    def step(self, result: StepResult) -> None:
        self.stop()
        step(result, self.out)


def _progress_bars(err: TextIO) -> Any:
    """A rich progress display on ``err``: ``0003_backfill.py users ━━━━ 40000/100000
    40% 12000 docs/s ETA 5s``; rate and ETA come from the events."""
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        TaskProgressColumn,
        TextColumn,
    )
    from rich.progress import (
        Progress as Bars,
    )

    return Bars(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TaskProgressColumn(),
        TextColumn("{task.fields[rate]}"),
        TextColumn("{task.fields[eta]}"),
        console=Console(file=err),
        redirect_stdout=False,
        redirect_stderr=False,
        refresh_per_second=4,
    )


class Events:
    """``--events FILE``: line-delimited JSON, one object per line, flushed as written.

    ``{"event": "step-started", …}`` as each step starts; for each backfill of the step
    ``backfill-started``, one ``batch`` per batch it writes and ``backfill-finished``
    (each with the fields of :meth:`alley.model.BatchProgress.to_json`); then
    ``step-finished`` (with ``duration_s``) or ``step-failed`` (with ``error``). Every
    object has ``at`` (ISO 8601, UTC).
    """

    def __init__(self, stream: TextIO, now: Callable[[], datetime] | None = None) -> None:
        self.stream = stream
        self.now = now or (lambda: datetime.now(UTC))
        self.current: LogEntry | None = None
        self._batches: dict[tuple[str, str], int] = {}  # the last batch number seen

    def _write(self, data: dict[str, Any]) -> None:
        data = {"event": data.pop("event"), "at": self.now().isoformat(), **data}
        self.stream.write(json.dumps(data, sort_keys=False) + "\n")
        self.stream.flush()

    def start(self, entry: LogEntry) -> None:
        self.current = entry
        self._write(
            {
                "event": "step-started",
                "id": entry.migration_id,
                "filename": entry.filename,
                "direction": entry.direction.value,
                "fake": entry.fake,
            }
        )

    def batch(self, event: BatchProgress) -> None:
        """``batch`` per batch written (its ``done`` counts all so far); around them
        ``backfill-started`` and ``backfill-finished``."""
        key = (event.filename, event.name)
        if event.batch == 0 and not event.finished:
            self._batches[key] = 0
            self._write({"event": "backfill-started", **event.to_json()})
            return
        if event.batch > self._batches.get(key, 0):
            self._batches[key] = event.batch
            self._write({"event": "batch", **event.to_json()})
        if event.finished:
            self._batches.pop(key, None)
            self._write({"event": "backfill-finished", **event.to_json()})

    def step(self, result: StepResult) -> None:
        self.current = None
        self._write(
            {
                "event": "step-finished",
                "id": result.id,
                "filename": result.filename,
                "direction": result.direction.value,
                "fake": result.fake,
                "duration_s": result.duration_s,
            }
        )

    def failed(self, error: BaseException) -> None:
        """The step that was running when ``error`` stopped the run, if one was."""
        entry, self.current = self.current, None
        if entry is None:
            return
        self._write(
            {
                "event": "step-failed",
                "id": entry.migration_id,
                "filename": entry.filename,
                "direction": entry.direction.value,
                "fake": entry.fake,
                "error": "interrupted"
                if isinstance(error, KeyboardInterrupt)
                else " ".join(str(error).split()) or type(error).__name__,
            }
        )


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def step(result: StepResult, out: TextIO | None = None) -> None:
    """The line printed as soon as a step is done."""
    out = out or sys.stdout
    verb = {"up": "applied", "down": "rolled back"}[result.direction.value]
    if result.fake:
        verb = {"up": "recorded (fake)", "down": "forgot (fake)"}[result.direction.value]
    out.write(f"{verb:<15} {result.filename}  ({result.duration_s * 1000:.0f} ms)\n")
    out.flush()


def run_data(report: Any, failed: Any = None) -> dict[str, Any]:
    """The JSON shape of a run (``up``, ``down``, ``redo``): the steps that ran, and if
    an error stopped it (an :class:`alley.api.FailedRun`), the step it stopped on
    (``failed``) and the error (``error``: ``message``, ``exit_code``)."""
    return {
        "direction": str(report.direction),
        "steps": to_jsonable(report.steps),
        "notes": list(report.notes),
        "failed": to_jsonable(failed.failed) if failed is not None else None,
        "error": {"message": failed.error, "exit_code": failed.exit_code}
        if failed is not None
        else None,
    }


def run_summary(report: Any, out: TextIO | None = None, target: str | None = None) -> None:
    """What a run did; for ``up`` to a ``target`` that ran nothing, that it was applied."""
    out = out or sys.stdout
    if str(report.direction) == "redo":
        if not report.steps:
            out.write("nothing to redo\n")
        else:
            total = sum(s.duration_s for s in report.steps)
            out.write(f"redid {report.steps[-1].filename} in {total:.2f}s\n")
        return
    if not report.steps:
        if report.direction.value == "down":
            out.write("nothing rolled back\n")
        elif target is not None:  # a pending target would have run
            out.write(f"nothing to do: migration {target} is already applied\n")
        else:
            out.write("nothing to do\n")
        return
    total = sum(s.duration_s for s in report.steps)
    noun = "migration" if len(report.steps) == 1 else "migrations"
    verb = "applied" if report.direction.value == "up" else "rolled back"
    out.write(f"{len(report.steps)} {noun} {verb} in {total:.2f}s\n")


def plugins(infos: Sequence[PluginInfo], out: TextIO | None = None) -> None:
    out = out or sys.stdout
    for info in infos:
        origin = f"{info.distribution or '?'} {info.version or ''}".strip()
        kind = "default" if info.default else "installed"
        out.write(f"{info.name}  {kind}  {origin}  {info.module}  [{', '.join(info.hooks)}]\n")


def waiting(state: LockState, err: TextIO | None = None) -> None:
    """Said once when a command starts waiting for the lock."""
    from alley.lease import describe_lock

    err = err or sys.stderr
    err.write(f"alley: waiting for the lock, {describe_lock(state)}\n")
    err.flush()


def _planned_steps(report: Any) -> list[tuple[str, MigrationStatus]]:
    then = getattr(report, "then", None)
    plans = [report.plan] + ([then] if then is not None else [])
    return [(p.direction.value, s) for p in plans for s in p.steps]


def plan_data(report: Any) -> dict[str, Any]:
    """The JSON shape of a plan; ``direction`` is ``redo`` for ``redo --plan``, and each
    step says its own direction."""
    return {
        "direction": "redo"
        if getattr(report, "then", None) is not None
        else report.plan.direction.value,
        "target": report.plan.target,
        "steps": [
            {"id": s.id, "filename": _filename(s), "direction": direction}
            | _helpers_data(report, _filename(s))
            for direction, s in _planned_steps(report)
        ],
        "lock": to_jsonable(report.lock),
        "lock_description": report.lock_description,
        "notes": list(report.notes),
    }


def _forecast(report: Any, filename: str) -> Any:
    """``up --plan``'s forecast of a step that uses alley's helpers, else ``None``."""
    find = getattr(report, "forecast", None)
    return find(filename) if callable(find) else None


def _helpers_data(report: Any, filename: str) -> dict[str, Any]:
    """``"helpers"``: what a step's helpers would do (``up --plan``), when it uses them."""
    found = _forecast(report, filename)
    return {} if found is None else {"helpers": found.to_json()}


def plan(report: Any, out: TextIO | None = None) -> None:
    out = out or sys.stdout
    out.write(f"lock: {report.lock_description}\n")
    if getattr(report, "then", None) is not None:  # redo
        if not report.plan:
            out.write("nothing to redo\n")
            return
        out.write("would roll back, then apply again:\n")
        for direction, step in _planned_steps(report):
            out.write(f"  {direction:<4}  {_filename(step)}\n")
        return
    verb = "apply" if report.plan.direction.value == "up" else "roll back"
    if not report.plan:
        out.write(f"nothing to {verb}\n")
        return
    out.write(f"would {verb}, in this order:\n")
    for step in report.plan.steps:
        out.write(f"  {_filename(step)}\n")
        found = _forecast(report, _filename(step))
        for line in found.lines() if found is not None else ():
            out.write(f"      {line}\n")


def import_report(report: Any, out: TextIO | None = None) -> None:
    """``import-history``: one line per entry of the tool's history (what became of it,
    the entry, the alley file it maps to, when the tool applied it), then a total."""
    out = out or sys.stdout
    verb = "would import" if report.dry_run else "imported"
    out.write(
        f"{report.tool} history in collection {report.collection}: {len(report.lines)} entries\n"
    )
    width = max((len(line.key) for line in report.lines), default=0)
    files = max((len(line.filename or "") for line in report.lines), default=0)
    for line in report.lines:
        target = f"-> {line.filename:<{files}}" if line.filename else (line.reason or "")
        applied = f"applied {_date(line.applied_at)}" if line.applied_at else "no applied date"
        if line.filename and line.recorded_at and line.recorded_at != line.applied_at:
            applied += f" (recorded {_date(line.recorded_at)})"
        if line.state == "skipped":
            applied = line.reason or ""
        columns = [f"{line.state:<16}", f"{line.key:<{width}}", target]
        columns += [applied] if line.filename else []
        out.write("  ".join(columns).rstrip() + "\n")
    counts = [
        f"{len(report.imported)} {verb}",
        f"{len(report.already)} already recorded",
        f"{len(report.problems)} not matched",
    ]
    tail = ""
    if report.import_id is not None:
        tail = (
            f" (import {report.import_id}; undo with "
            f"'alley import-history --undo --import-id {report.import_id}')"
        )
    elif report.dry_run:
        tail = " (dry run: nothing written)"
    out.write(", ".join(counts) + tail + "\n")


def history(entries: Sequence[LogEntry], out: TextIO | None = None) -> None:
    out = out or sys.stdout
    if not entries:
        out.write("no runs logged\n")
        return
    for e in entries:
        columns = [
            _date(e.at),
            f"{e.event.value:<14}",
            f"{e.direction.value:<4}",
            e.filename + (" (fake)" if e.fake else ""),
            f"{e.duration_s * 1000:.0f} ms" if e.duration_s is not None else "",
            f"{e.holder.user}@{e.holder.host} pid {e.holder.pid} run {e.holder.run_id}",
            e.error or "",
        ]
        out.write("  ".join(c for c in columns if c) + "\n")


# --- many databases ----------------------------------------------------------------


def _fleet_detail(outcome: Any) -> str:
    """What one database's outcome says beyond its result word."""
    report = outcome.report
    if outcome.error is not None:
        return str(outcome.error)
    if report is None:
        return ""
    if hasattr(report, "steps"):  # up, down
        if not report.steps:
            return ""
        names = ", ".join(s.filename for s in report.steps)
        return f"{len(report.steps)}: {names}"
    if hasattr(report, "problems"):  # verify
        return "; ".join(report.problems)
    if hasattr(report, "changes"):  # check
        return "; ".join(c.describe() for c in report.changes)
    if hasattr(report, "plan"):  # --plan
        return ", ".join(s.filename for s in report.plan.steps)
    if hasattr(report, "pending"):  # status
        return f"{len(report.applied)} applied, {len(report.pending)} pending"
    return ""


def fleet_line(outcome: Any, out: TextIO | None = None, err: TextIO | None = None) -> None:
    """The line printed as a database of a multi-database command ends, after its
    notes (on stderr, each naming the database)."""
    out = out or sys.stdout
    report = outcome.report
    # verify's report keeps its notes in its status report
    said = getattr(getattr(report, "status", report), "notes", ())
    notes([f"{outcome.database}: {n}" for n in said], err)
    detail = _fleet_detail(outcome)
    code = f" (exit {outcome.exit_code})" if outcome.exit_code else ""
    out.write(
        f"{outcome.database}: {outcome.result}{code} in {outcome.duration_s:.2f}s"
        + (f" · {detail}" if detail else "")
        + "\n"
    )
    out.flush()


def fleet_summary(report: Any, out: TextIO | None = None) -> None:
    """The end of a multi-database command: a table (on a terminal) or a line per
    database, then the count of each result and the exit code."""
    out = out or sys.stdout
    if _isatty(out):
        from rich.console import Console
        from rich.table import Table

        table = Table(box=None, pad_edge=False)
        for column in ("database", "result", "exit", "time", "detail"):
            table.add_column(column)
        for outcome in report.outcomes:
            style = "red" if outcome.exit_code not in (0, 7) else "green"
            table.add_row(
                outcome.database,
                f"[{style}]{outcome.result}[/]",
                str(outcome.exit_code),
                f"{outcome.duration_s:.2f}s",
                _fleet_detail(outcome),
            )
        Console(file=out).print(table)
    counts = ", ".join(f"{n} {result}" for result, n in report.count().items())
    total = len(report.outcomes)
    out.write(
        f"{total} database{'s' if total != 1 else ''}: {counts} "
        f"({report.jobs} at a time, {report.duration_s:.2f}s); exit {report.exit_code}\n"
    )


def fleet_data(report: Any, settings: Settings | None = None) -> dict[str, Any]:
    """The JSON shape of a multi-database command: per database its result, exit code,
    duration, error and the single-database command's own JSON (``report``)."""

    def data(outcome: Any) -> Any:
        inner = outcome.report
        if inner is None:
            return None
        if outcome.error is not None:  # the FailedRun of up/down: what ran before
            return run_data(inner, inner)
        if hasattr(inner, "steps") and hasattr(inner, "direction"):
            return run_data(inner)
        if hasattr(inner, "problems"):
            return {"ok": not inner.problems, "problems": list(inner.problems)}
        if hasattr(inner, "changes"):  # check
            return inner.as_dict()
        if hasattr(inner, "plan"):
            return plan_data(inner)
        return status_data(inner)

    return {
        "command": {"plan_up": "up --plan", "plan_down": "down --plan"}.get(
            report.command, report.command
        ),
        "exit_code": report.exit_code,
        "jobs": report.jobs,
        "duration_s": round(report.duration_s, 3),
        "counts": report.count(),
        "databases": [
            {
                "database": o.database,
                "result": o.result,
                "exit_code": o.exit_code,
                "duration_s": round(o.duration_s, 3),
                "error": o.error,
                "report": data(o),
            }
            for o in report.outcomes
        ],
        "notes": list(report.notes),
        "stopped": report.stopped,
    }


# ---------------------------------------------------------------------------
# alley test (alley.rehearsal)
# ---------------------------------------------------------------------------


def rehearsal_line(item: Any) -> str:
    """One migration of ``alley test``: its phases' times, then ``ok``, ``FAILED``,
    ``IRREVERSIBLE: down left ...`` and/or ``NOT REPEATABLE: up again left ...``."""
    if not item.ran:
        return f"{item.filename}  not run (a migration before it failed)"
    names = ("up", "down", "up", "up over itself")  # alley.rehearsal.PHASES, shorter
    times = "  ".join(
        f"{name} {seconds:.2f}s" for name, seconds in zip(names, item.durations, strict=False)
    )
    head = f"{item.filename}  {times}".rstrip()
    verdicts = []
    if item.failed_phase is not None:
        verdicts.append(f"FAILED ({item.failed_phase}): {item.error}")
    if item.irreversible:
        verdicts.append(f"IRREVERSIBLE: down left {', '.join(item.irreversible)}")
    if item.not_repeatable:
        verdicts.append(f"NOT REPEATABLE: up again left {', '.join(item.not_repeatable)}")
    if item.not_idempotent:
        verdicts.append(
            f"NOT IDEMPOTENT: up over its own result left {', '.join(item.not_idempotent)}"
        )
    return f"{head}  {'; '.join(verdicts) or 'ok'}"


def rehearsal_summary(report: Any, out: TextIO | None = None) -> None:
    """``alley test``'s last lines: the counts, and what became of the throwaway."""
    out = out or sys.stdout
    if report.throwaway is None:
        out.write("nothing to do\n")
        return
    counts: dict[str, int] = {}
    for item in report.migrations:
        for word in item.result.split(", "):
            counts[word] = counts.get(word, 0) + 1
    order = ("ok", "irreversible", "not repeatable", "not idempotent", "failed", "not run")
    rehearsed = sum(1 for m in report.migrations if m.ran)
    parts = ", ".join(f"{counts[w]} {w}" for w in order if counts.get(w))
    copied = sum(report.seeded.values())
    # Said only for --server: the same server is the one the command names.
    on = f" on {report.server}" if getattr(report, "other_server", False) else ""
    out.write(
        f"{rehearsed} rehearsed: {parts} (on a copy of {report.database}"
        f"{' made' + on if on else ''}: "
        f"{len(report.seeded)} collection{'s' * (len(report.seeded) != 1)}, "
        f"{copied} document{'s' * (copied != 1)}, --sample {report.sample})\n"
    )
    if report.kept:
        out.write(f"kept the throwaway database {report.throwaway}{on}\n")
    else:
        out.write(f"dropped the throwaway database {report.throwaway}{on}\n")
