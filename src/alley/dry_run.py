"""``alley up --plan`` for steps that use alley's helpers: run them without writing.

A pending step whose ``up`` takes the ``step`` parameter is run with
``step.dry_run = True`` and ``db`` a :class:`ReadOnlyDatabase`: reads go to the server,
alley's helpers (``step.backfill``, ``step.create_index``, ``step.drop_index``,
``step.rebuild_index`` and the functions of :mod:`alley.indexes`) read what they need
and record what they would do, and any other write raises :class:`DryRunStop` (the
plan then says "writes outside alley's helpers: not counted"). Nothing is written.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pymongo.collection import Collection
from pymongo.database import Database

from alley import indexes
from alley.data import BackfillResult, Step
from alley.indexes import IndexResult, human_count


class DryRunStop(BaseException):
    """A migration planned by ``up --plan`` tried to write outside alley's helpers.

    A ``BaseException``, like ``KeyboardInterrupt``: a migration's own
    ``except Exception`` does not hide it. Where :mod:`alley.data` defines its own
    ``DryRunStop``, that one is raised (it is what the docs name).
    """


@dataclass(frozen=True)
class PlannedBackfill:
    """``step.backfill`` in a plan: how many documents its ``where`` selects now."""

    collection: str
    documents: int
    name: str | None = None

    def describe(self) -> str:
        return f"backfill {self.collection}: {self.documents} documents to do"


@dataclass
class PlanRecorder:
    """What the helpers of one planned step would do, in the order they were called."""

    large_collection: int
    actions: list[IndexResult | PlannedBackfill] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)  # writes outside the helpers

    def record(self, action: IndexResult | PlannedBackfill) -> None:
        self.actions.append(action)

    def refuse(self, what: str) -> BaseException:
        self.refused.append(what)
        try:
            from alley import data

            stop: type[BaseException] = getattr(data, "DryRunStop", DryRunStop)
        except ImportError:
            stop = DryRunStop
        return stop(f"up --plan: {what} is a write outside alley's helpers; not run")


def recorder_of(db: Any) -> PlanRecorder | None:
    """The plan recorder behind ``db`` when it is a :class:`ReadOnlyDatabase`, else None."""
    recorder = getattr(type(db), "_alley_is_read_only", False) and db._alley_recorder
    return recorder if isinstance(recorder, PlanRecorder) else None


# ---------------------------------------------------------------------------
# The read-only database
# ---------------------------------------------------------------------------

_COLLECTION_READS = frozenset(
    {
        "find",
        "find_one",
        "find_raw_batches",
        "count_documents",
        "estimated_document_count",
        "distinct",
        "list_indexes",
        "index_information",
        "options",
        "watch",
        "aggregate_raw_batches",
    }
)
_DATABASE_READS = frozenset(
    {
        "list_collection_names",
        "list_collections",
        "validate_collection",
        "dereference",
        "watch",
    }
)
#: ``db.command(NAME)`` that only read.
_READ_COMMANDS = frozenset(
    c.lower()
    for c in (
        "ping",
        "buildInfo",
        "hello",
        "isMaster",
        "dbStats",
        "collStats",
        "count",
        "find",
        "distinct",
        "listIndexes",
        "listCollections",
        "serverStatus",
        "connectionStatus",
        "explain",
        "getParameter",
        "hostInfo",
        "aggregate",
    )
)
_WRITING_STAGES = ("$out", "$merge")


def _writes(pipeline: Sequence[Mapping[str, Any]] | None) -> bool:
    return any(stage in _WRITING_STAGES for step in (pipeline or ()) for stage in step)


class ReadOnlyCollection:
    """A PyMongo ``Collection`` whose reads go through and whose writes raise."""

    _alley_is_read_only = True

    def __init__(self, collection: Collection[Any], recorder: PlanRecorder) -> None:
        self._collection = collection
        self._alley_recorder = recorder

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._collection, name)
        if isinstance(attribute, Collection):  # db.users.archive
            return ReadOnlyCollection(attribute, self._alley_recorder)
        if isinstance(attribute, Database):
            return ReadOnlyDatabase(attribute, self._alley_recorder)
        if name in ("with_options",):
            return lambda *a, **k: ReadOnlyCollection(attribute(*a, **k), self._alley_recorder)
        if not callable(attribute) or name in _COLLECTION_READS:
            return attribute
        return self._refusing(name)

    def __getitem__(self, name: str) -> ReadOnlyCollection:
        return ReadOnlyCollection(self._collection[name], self._alley_recorder)

    def aggregate(self, pipeline: Sequence[Mapping[str, Any]], *args: Any, **kwargs: Any) -> Any:
        if _writes(pipeline):
            raise self._alley_recorder.refuse(f"{self._collection.name}.aggregate with $out/$merge")
        return self._collection.aggregate(pipeline, *args, **kwargs)

    def _refusing(self, name: str) -> Callable[..., Any]:
        def refuse(*args: Any, **kwargs: Any) -> Any:
            raise self._alley_recorder.refuse(f"{self._collection.name}.{name}")

        return refuse

    def __repr__(self) -> str:
        return f"ReadOnlyCollection({self._collection.full_name})"


class ReadOnlyDatabase:
    """A PyMongo ``Database`` for ``up --plan``: reads go through, writes raise
    :class:`DryRunStop`, and alley's helpers record what they would do."""

    _alley_is_read_only = True

    def __init__(self, db: Database[Any], recorder: PlanRecorder) -> None:
        self._db = db
        self._alley_recorder = recorder

    def __getitem__(self, name: str) -> ReadOnlyCollection:
        return ReadOnlyCollection(self._db[name], self._alley_recorder)

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._db, name)
        if isinstance(attribute, Collection):
            return ReadOnlyCollection(attribute, self._alley_recorder)
        if name in ("get_collection", "with_options"):
            return lambda *a, **k: _wrap(attribute(*a, **k), self._alley_recorder)
        if name == "client":
            return ReadOnlyClient(attribute, self._alley_recorder)
        if not callable(attribute) or name in _DATABASE_READS:
            return attribute
        return self._refusing(name)

    def command(self, command: Any, *args: Any, **kwargs: Any) -> Any:
        name = command if isinstance(command, str) else next(iter(command), "")
        pipeline = None if isinstance(command, str) else command.get("pipeline")
        if str(name).lower() not in _READ_COMMANDS or _writes(pipeline):
            raise self._alley_recorder.refuse(f"db.command({name!r})")
        return self._db.command(command, *args, **kwargs)

    def aggregate(self, pipeline: Sequence[Mapping[str, Any]], *args: Any, **kwargs: Any) -> Any:
        if _writes(pipeline):
            raise self._alley_recorder.refuse("db.aggregate with $out/$merge")
        return self._db.aggregate(pipeline, *args, **kwargs)

    def _refusing(self, name: str) -> Callable[..., Any]:
        def refuse(*args: Any, **kwargs: Any) -> Any:
            raise self._alley_recorder.refuse(f"db.{name}")

        return refuse

    def __repr__(self) -> str:
        return f"ReadOnlyDatabase({self._db.name})"


class ReadOnlyClient:
    """``db.client`` in a plan: other databases are read-only too."""

    def __init__(self, client: Any, recorder: PlanRecorder) -> None:
        self._client = client
        self._alley_recorder = recorder

    def __getitem__(self, name: str) -> ReadOnlyDatabase:
        return ReadOnlyDatabase(self._client[name], self._alley_recorder)

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._client, name)
        if isinstance(attribute, Database):
            return ReadOnlyDatabase(attribute, self._alley_recorder)
        if name in ("get_database", "get_default_database"):
            return lambda *a, **k: ReadOnlyDatabase(attribute(*a, **k), self._alley_recorder)
        if name in ("list_database_names", "list_databases", "server_info", "address"):
            return attribute
        if not callable(attribute):
            return attribute

        def refuse(*args: Any, **kwargs: Any) -> Any:
            raise self._alley_recorder.refuse(f"client.{name}")

        return refuse


def _wrap(value: Any, recorder: PlanRecorder) -> Any:
    if isinstance(value, Collection):
        return ReadOnlyCollection(value, recorder)
    if isinstance(value, Database):
        return ReadOnlyDatabase(value, recorder)
    return value


# ---------------------------------------------------------------------------
# Planning one step
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class StepForecast:
    """What one pending step's helpers would do (``up --plan``).

    ``actions`` in call order; ``refused`` the writes the step tried outside the
    helpers (their effect is not counted: the step stopped at the first);
    ``error`` what stopped the step otherwise (it is planned against the database as
    it is now, before the steps ahead of it ran).
    """

    filename: str
    actions: tuple[IndexResult | PlannedBackfill, ...] = ()
    refused: tuple[str, ...] = ()
    error: str | None = None

    def lines(self) -> list[str]:
        """The plan's lines for this step, without indentation."""
        lines = [action.describe() for action in self.actions]
        if self.refused:
            lines.append(f"writes outside alley's helpers: not counted ({self.refused[0]})")
        if self.error is not None:
            lines.append(f"stopped planning: {self.error}")
        if not lines:
            lines.append("no helper calls")
        return lines

    def to_json(self) -> dict[str, Any]:
        def action(a: IndexResult | PlannedBackfill) -> dict[str, Any]:
            if isinstance(a, PlannedBackfill):
                return {
                    "kind": "backfill",
                    "collection": a.collection,
                    "name": a.name,
                    "documents": a.documents,
                }
            return {
                "kind": "index",
                "collection": a.collection,
                "name": a.name,
                "keys": [list(k) for k in a.keys],
                "action": a.action,
                "conflict": a.conflict,
                "documents": a.documents,
                "large": a.large,
            }

        return {
            "actions": [action(a) for a in self.actions],
            "writes_outside_helpers": list(self.refused),
            "error": self.error,
            "lines": self.lines(),
        }


def takes_step(function: Callable[..., Any] | None) -> bool:
    """Whether ``up``/``down`` accepts ``step``: two positional parameters (or ``*args``),
    as the Python executor decides."""
    if function is None:
        return False
    try:
        parameters = list(inspect.signature(function).parameters.values())
    except (TypeError, ValueError):
        return False
    positional = [
        p
        for p in parameters
        if p.kind in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    ]
    return len(positional) >= 2 or any(
        p.kind is inspect.Parameter.VAR_POSITIONAL for p in parameters
    )


class PlanStep(Step):
    """The dry-run :class:`~alley.data.Step` of ``up --plan``: each helper records what it
    would do (a backfill its count, an index whether it exists, conflicts, or would be
    built, and on how large a collection)."""

    def backfill(self, collection: str, **kwargs: Any) -> BackfillResult:
        before = len(self.planned)
        result = super().backfill(collection, **kwargs)
        name = self.planned[-1].name if len(self.planned) > before else kwargs.get("name")
        _recorder(self.db).record(PlannedBackfill(collection, result.matched, name))
        return result

    def create_index(self, collection: str, keys: Any, **options: Any) -> Any:
        return indexes.ensure_index(self.db, collection, keys, **options)

    def drop_index(self, collection: str, name_or_keys: Any) -> Any:
        return indexes.drop_index(self.db, collection, name_or_keys)

    def rebuild_index(self, collection: str, keys: Any, *, replaces: str, **options: Any) -> Any:
        return indexes.rebuild_index(self.db, collection, keys, replaces=replaces, **options)


def _recorder(db: Any) -> PlanRecorder:
    recorder = recorder_of(db)
    assert recorder is not None  # a PlanStep's db is always the read-only one
    return recorder


def forecast(
    filename: str,
    up: Callable[..., Any],
    db: Database[Any],
    *,
    large_collection: int,
    checkpoints: Sequence[Any] = (),
) -> StepForecast:
    """Run ``up(read_only_db, step)`` with a dry-run :class:`PlanStep`, and say what
    its helpers would do. ``checkpoints``: a resumable step's, so counts start after
    them."""
    recorder = PlanRecorder(large_collection)
    read_only = ReadOnlyDatabase(db, recorder)
    error: str | None = None
    step = PlanStep(read_only, filename, "up", dry_run=True, checkpoints=checkpoints)
    try:
        up(read_only, step)
    except DryRunStop:
        pass
    except Exception as raised:  # the step's own failure: say so, plan the rest
        if not recorder.refused:
            error = f"{type(raised).__name__}: {raised}"
    except BaseException as raised:
        if type(raised).__name__ != "DryRunStop":
            raise
    return StepForecast(filename, tuple(recorder.actions), tuple(recorder.refused), error)


def describe_count(n: int) -> str:
    return human_count(n)


def forecast_plan(
    steps: Sequence[Any],
    loaded: Mapping[str, Any],
    db: Database[Any],
    *,
    large_collection: int,
) -> tuple[StepForecast, ...]:
    """:func:`forecast` of every planned ``up`` step whose ``up`` takes ``step``
    (``steps`` are :class:`~alley.model.MigrationStatus`, ``loaded`` their code by
    filename). A resumable step is planned from its checkpoints."""
    forecasts: list[StepForecast] = []
    for status in steps:
        migration = status.migration
        functions = loaded.get(migration.filename) if migration is not None else None
        up = getattr(functions, "up", None)
        if migration is None or up is None or not takes_step(up):
            continue
        entry = getattr(status, "attempt_entry", None)
        attempt = getattr(status, "attempt", None)
        resumable = getattr(attempt, "value", None) == "resumable"
        checkpoints = tuple(getattr(entry, "checkpoints", ())) if resumable else ()
        forecasts.append(
            forecast(
                migration.filename,
                up,
                db,
                large_collection=large_collection,
                checkpoints=checkpoints,
            )
        )
    return tuple(forecasts)
