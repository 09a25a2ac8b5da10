"""Everything the CLI shows: plain lines for logs and pipes, a table on a terminal, JSON.

The API returns reports; only this module turns them into text. rich is imported only
when a table is drawn on a terminal.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import sys
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

from alley.model import (
    Attempt,
    Drift,
    LockState,
    LogEntry,
    MigrationStatus,
    PluginInfo,
    RunReport,
    StatusReport,
    StepResult,
)


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


def status_data(report: StatusReport) -> dict[str, Any]:
    """The JSON shape of ``status``: one entry per migration, plus counts and notes."""
    return {
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


def status_report(report: StatusReport, out: TextIO | None = None) -> None:
    """One line per migration (``applied``/``pending``, filename, date, notes), then a total."""
    out = out or sys.stdout
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


def step(result: StepResult, out: TextIO | None = None) -> None:
    """The line printed as soon as a step is done."""
    out = out or sys.stdout
    verb = {"up": "applied", "down": "rolled back"}[result.direction.value]
    if result.fake:
        verb = {"up": "recorded (fake)", "down": "forgot (fake)"}[result.direction.value]
    out.write(f"{verb:<15} {result.filename}  ({result.duration_s * 1000:.0f} ms)\n")
    out.flush()


def run_summary(report: RunReport, out: TextIO | None = None, target: str | None = None) -> None:
    """What a run did; for ``up`` to a ``target`` that ran nothing, that it was applied."""
    out = out or sys.stdout
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


def plan_data(report: Any) -> dict[str, Any]:
    return {
        "direction": report.plan.direction.value,
        "target": report.plan.target,
        "steps": [
            {"id": s.id, "filename": s.migration.filename if s.migration else s.filename}
            for s in report.plan.steps
        ],
        "lock": to_jsonable(report.lock),
        "lock_description": report.lock_description,
        "notes": list(report.notes),
    }


def plan(report: Any, out: TextIO | None = None) -> None:
    out = out or sys.stdout
    verb = "apply" if report.plan.direction.value == "up" else "roll back"
    out.write(f"lock: {report.lock_description}\n")
    if not report.plan:
        out.write(f"nothing to {verb}\n")
        return
    out.write(f"would {verb}, in this order:\n")
    for step in report.plan.steps:
        name = step.migration.filename if step.migration else step.filename
        out.write(f"  {name}\n")


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
