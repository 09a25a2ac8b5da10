"""The indexes a project's MongoEngine models declare, and how a database differs.

``alley create NAME --autogenerate`` and ``alley check`` import the modules named by
the ``models`` setting, find their :class:`mongoengine.Document` classes and ask each
for what its own ``ensure_indexes()`` would send to the server: MongoEngine builds that
list when the class is defined (``meta['indexes']`` in every form, ``unique`` and
``unique_with`` fields, geo fields, ``_cls`` prefixes under ``allow_inheritance``),
so reading it, instead of parsing ``meta`` again, gives exactly the indexes the
application would create. :func:`compare` then sets them against ``listIndexes``, and
:func:`render_migration` writes the migration a person would have written.

MongoEngine keeps that list under private names; they are read here and nowhere else
in alley, and :data:`MONGOENGINE_PRIVATE_NAMES` lists them so a unit test fails when a
MongoEngine release moves one.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from alley.errors import ConfigError
from alley.indexes import (
    comparable_keys,
    index_name,
    list_indexes,
    normalise_keys,
    normalise_options,
    reported_keys,
)

#: The MongoEngine private names this module reads: class attributes and methods of a
#: ``Document`` class, then keys of its ``_meta``. ``tests/unit/test_model_indexes.py``
#: asserts each still exists.
MONGOENGINE_PRIVATE_NAMES = ("_meta", "_get_collection_name", "_fields")
#: Keys of ``Document._meta`` read here (``index_specs`` is MongoEngine's own build of
#: ``meta['indexes']`` merged with unique and geo fields).
MONGOENGINE_META_KEYS = (
    "index_specs",
    "index_opts",
    "index_cls",
    "allow_inheritance",
    "abstract",
    "collection",
)

#: ``create_index`` options MongoEngine passes that do not change the index.
_NOT_SENT = frozenset({"cls", "background", "fields"})


@dataclass(frozen=True)
class DeclaredIndex:
    """One index the models declare: on which collection, under which name (the one
    given in ``meta``, else the server's default for its keys), with the keys and the
    ``create_index`` options MongoEngine would send, and which classes declare it."""

    collection: str
    name: str
    keys: tuple[tuple[str, Any], ...]
    options: Mapping[str, Any]
    declared_by: tuple[str, ...]

    @property
    def wanted(self) -> dict[str, Any]:
        """The options that make it differ from another index (defaults left out)."""
        return normalise_options(self.options)


@dataclass(frozen=True)
class IndexChange:
    """A difference between the models and the database, for one index.

    ``kind``: ``missing`` (declared, not in the database), ``extra`` (in the database,
    declared by no model; never ``_id_``) or ``differs`` (same name, or same keys, with
    other keys or options: ``details`` says which, model value first). ``existing`` is
    the index as ``listIndexes`` reported it (``None`` when missing).
    """

    kind: str
    collection: str
    name: str
    declared: DeclaredIndex | None = None
    existing: Mapping[str, Any] | None = None
    details: tuple[str, ...] = ()

    def describe(self) -> str:
        """``missing: users email_1 (unique) declared by shop.models.User``."""
        if self.kind == "extra":
            assert self.existing is not None
            shown = _summary(reported_keys(self.existing), normalise_options(self.existing))
            return f"extra: {self.collection} {self.name}{shown} declared by no model"
        assert self.declared is not None
        by = ", ".join(self.declared.declared_by)
        if self.kind == "missing":
            shown = _summary(self.declared.keys, self.declared.wanted)
            return f"missing: {self.collection} {self.name}{shown} declared by {by}"
        existing = self.existing or {}
        other = f" (database: {existing.get('name')})" if existing.get("name") != self.name else ""
        return (
            f"differs: {self.collection} {self.name}{other} "
            f"({'; '.join(self.details)}) declared by {by}"
        )

    def as_dict(self) -> dict[str, Any]:
        """For ``--json``: plain values only."""
        declared = self.declared
        return {
            "kind": self.kind,
            "collection": self.collection,
            "name": self.name,
            "keys": [list(k) for k in (declared.keys if declared else self._reported())],
            "options": declared.wanted if declared else normalise_options(self.existing or {}),
            "declared_by": list(declared.declared_by) if declared else [],
            "database": None if self.existing is None else _database_view(self.existing),
            "details": list(self.details),
        }

    def _reported(self) -> tuple[tuple[str, Any], ...]:
        return reported_keys(self.existing) if self.existing is not None else ()


def _database_view(index: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "name": index.get("name"),
        "keys": [list(k) for k in reported_keys(index)],
        "options": normalise_options(index),
    }


def _summary(keys: Sequence[tuple[str, Any]], options: Mapping[str, Any]) -> str:
    """`` (unique)``, `` (unique, expireAfterSeconds=3600)``: the options, if any."""
    flags = [k if v is True else f"{k}={_literal(v)}" for k, v in options.items()]
    return f" ({', '.join(flags)})" if flags else ""


# ---------------------------------------------------------------------------
# Importing the models
# ---------------------------------------------------------------------------


def import_models(modules: Sequence[str], folders: Sequence[Path]) -> list[type]:
    """Import ``modules`` with ``folders`` (the project's root) first on ``sys.path`` and
    return their concrete ``Document`` classes, in the order found.

    A module imported before from somewhere else (another project of the same process)
    is imported again from ``folders``.

    :raises ConfigError: a module cannot be imported, or declares no ``Document``.
    """
    for folder in reversed(folders):
        if str(folder) not in sys.path:
            sys.path.insert(0, str(folder))
    found: list[type] = []
    for name in modules:
        module = _import(name, folders)
        documents = documents_of(module)
        if not documents:
            raise ConfigError(
                f"models module {name} ({module.__file__}) defines no mongoengine Document",
                hint="name the module that defines the Document classes",
            )
        found += [d for d in documents if d not in found]
    return found


def _import(name: str, folders: Sequence[Path]) -> ModuleType:
    _forget_foreign(name, folders)
    try:
        return importlib.import_module(name)
    except Exception as error:
        text = " ".join(str(error).split())
        raise ConfigError(
            f"cannot import models module {name}: {type(error).__name__}: {text}",
            hint=f"it is imported with {', '.join(map(str, folders))} on sys.path",
        ) from error


def _forget_foreign(name: str, folders: Sequence[Path]) -> None:
    """Drop ``name`` and its packages from ``sys.modules`` when they were loaded from
    outside ``folders`` while ``folders`` hold a package or module of that name: the
    API may serve several projects in one process. Models installed elsewhere (a
    package in site-packages) are left as the application imported them: importing
    them again would give it two copies of every ``Document`` class."""
    roots = [f.resolve() for f in folders]
    parts = name.split(".")
    if not any((r / parts[0]).is_dir() or (r / f"{parts[0]}.py").is_file() for r in roots):
        return
    for i in range(len(parts), 0, -1):
        cached = sys.modules.get(".".join(parts[:i]))
        location = getattr(cached, "__file__", None)
        if cached is None or location is None:
            continue
        if not any(Path(location).resolve().is_relative_to(r) for r in roots):
            for key in [k for k in sys.modules if k == parts[0] or k.startswith(parts[0] + ".")]:
                del sys.modules[key]
            return


def documents_of(module: ModuleType) -> list[type]:
    """The concrete (not abstract) ``Document`` classes a module defines or imports."""
    from mongoengine import Document

    found: list[type] = []
    for value in vars(module).values():
        if (
            isinstance(value, type)
            and issubclass(value, Document)
            and value is not Document
            and not _meta(value).get("abstract", False)
            and value not in found
        ):
            found.append(value)
    return found


def _meta(document: type) -> Mapping[str, Any]:
    meta: Mapping[str, Any] = getattr(document, "_meta", {})
    return meta


def collection_of(document: type) -> str:
    """The collection a ``Document`` class reads and writes."""
    return str(document._get_collection_name())  # type: ignore[attr-defined]


def qualified_name(document: type) -> str:
    """``shop.models.User``."""
    return f"{document.__module__}.{document.__qualname__}"


def declared_fields(documents: Iterable[type]) -> dict[str, dict[str, str]]:
    """The fields the models declare, by collection: each field's name as stored
    (its ``db_field``) and the first class declaring it (``shop.models.User``). For
    the lint rule ``destructive``: an ``$unset`` of one of these removes data the
    application still reads."""
    found: dict[str, dict[str, str]] = {}
    for document in documents:
        fields = found.setdefault(collection_of(document), {})
        for declared in getattr(document, "_fields", {}).values():
            name = str(getattr(declared, "db_field", None) or getattr(declared, "name", ""))
            if name and name != "_cls":
                fields.setdefault(name, qualified_name(document))
    return found


# ---------------------------------------------------------------------------
# What ensure_indexes() would send
# ---------------------------------------------------------------------------


def indexes_of(document: type) -> list[DeclaredIndex]:
    """The indexes ``document.ensure_indexes()`` would create, in its order.

    Each of ``_meta['index_specs']`` with ``meta['index_opts']`` under it (``cls`` and
    ``background`` left out: neither changes the index), then the ``_cls`` index
    MongoEngine adds to a class that allows inheritance unless ``index_cls`` is false
    or another index starts with ``_cls``. ``auto_create_index`` is not consulted: a
    project that turns it off is exactly one whose indexes migrations create.
    """
    from mongoengine.document import includes_cls

    meta = _meta(document)
    collection = collection_of(document)
    base_options = {
        k: v for k, v in dict(meta.get("index_opts") or {}).items() if k not in _NOT_SENT
    }
    by = (qualified_name(document),)
    found: list[DeclaredIndex] = []
    cls_indexed = False
    for spec in meta.get("index_specs") or []:
        fields = spec["fields"]
        cls_indexed = cls_indexed or bool(includes_cls(fields))
        options = {**base_options, **{k: v for k, v in spec.items() if k not in _NOT_SENT}}
        found.append(_declared(collection, fields, options, by))
    if meta.get("index_cls", True) and not cls_indexed and meta.get("allow_inheritance"):
        found.append(_declared(collection, [("_cls", 1)], dict(base_options), by))
    return found


def _declared(
    collection: str, fields: Sequence[Any], options: Mapping[str, Any], by: tuple[str, ...]
) -> DeclaredIndex:
    keys = normalise_keys(list(fields))
    name = str(options.get("name") or index_name(keys))
    kept = {k: v for k, v in options.items() if k != "name"}
    return DeclaredIndex(collection, name, keys, kept, by)


def declared_indexes(documents: Iterable[type]) -> dict[str, list[DeclaredIndex]]:
    """Every declared index, by collection (sorted), one per name: classes sharing a
    collection (a hierarchy under ``allow_inheritance``) that declare the same index
    are all named in ``declared_by``.

    :raises ConfigError: two classes declare one index name with other keys or options
        (MongoEngine would fail at the second ``create_index``).
    """
    by_collection: dict[str, dict[str, DeclaredIndex]] = {}
    for document in documents:
        for index in indexes_of(document):
            named = by_collection.setdefault(index.collection, {})
            there = named.get(index.name)
            if there is None:
                named[index.name] = index
                continue
            if comparable_keys(there.keys) != comparable_keys(index.keys) or (
                there.wanted != index.wanted
            ):
                raise ConfigError(
                    f"index {index.name} on {index.collection} is declared twice, "
                    f"differently: by {', '.join(there.declared_by)} and "
                    f"{', '.join(index.declared_by)}",
                    hint="give one of them another name in meta['indexes']",
                )
            merged = tuple(dict.fromkeys((*there.declared_by, *index.declared_by)))
            named[index.name] = DeclaredIndex(
                there.collection, there.name, there.keys, there.options, merged
            )
    return {c: list(by_collection[c].values()) for c in sorted(by_collection)}


# ---------------------------------------------------------------------------
# Comparing with the database
# ---------------------------------------------------------------------------


def option_differences(wanted: Mapping[str, Any], reported: Mapping[str, Any]) -> list[str]:
    """``unique: model True, database False`` for each option that differs (a
    ``collation`` on the fields the model gives: the server fills in the rest)."""
    have = normalise_options(reported)
    found: list[str] = []
    for name in sorted(set(wanted) | set(have)):
        mine, theirs = wanted.get(name, _default(name)), have.get(name, _default(name))
        if (
            name == "collation"
            and isinstance(mine, dict)
            and isinstance(theirs, dict)
            and all(theirs.get(k) == v for k, v in mine.items() if k != "version")
        ):
            continue
        if mine != theirs:
            found.append(f"{name}: model {_literal(mine)}, database {_literal(theirs)}")
    return found


def _default(name: str) -> Any:
    return False if name in ("unique", "sparse", "hidden") else None


def compare_collection(
    collection: str, declared: Sequence[DeclaredIndex], existing: Sequence[Mapping[str, Any]]
) -> list[IndexChange]:
    """How one collection's indexes (``existing``, from ``listIndexes``) differ from
    ``declared``: an index of the same name, or else of the same keys, with the same
    options satisfies a declaration (MongoEngine would build nothing for it)."""
    changes: list[IndexChange] = []
    claimed: set[str] = set()

    def equivalent(index: DeclaredIndex, there: Mapping[str, Any]) -> bool:
        same_keys = reported_keys(there) == comparable_keys(index.keys)
        return same_keys and not option_differences(index.wanted, there)

    for index in declared:
        same_name = next((i for i in existing if i.get("name") == index.name), None)
        if same_name is not None and equivalent(index, same_name):
            claimed.add(index.name)
            continue
        same_keys = [
            i
            for i in existing
            if i.get("name") not in claimed
            and i.get("name") != "_id_"
            and reported_keys(i) == comparable_keys(index.keys)
        ]
        alike = next((i for i in same_keys if equivalent(index, i)), None)
        if alike is not None and same_name is None:
            claimed.add(str(alike.get("name")))
            continue
        other = same_name if same_name is not None else next(iter(same_keys), None)
        if other is None:
            changes.append(IndexChange("missing", collection, index.name, index))
            continue
        claimed.add(str(other.get("name")))
        details = option_differences(index.wanted, other)
        if reported_keys(other) != comparable_keys(index.keys):
            details.insert(
                0, f"keys: model {_keys(index.keys)}, database {_keys(reported_keys(other))}"
            )
        changes.append(IndexChange("differs", collection, index.name, index, other, tuple(details)))
    for there in existing:
        name = str(there.get("name"))
        if name != "_id_" and name not in claimed:
            changes.append(IndexChange("extra", collection, name, None, there))
    return changes


def compare(
    db: Any, declared: Mapping[str, Sequence[DeclaredIndex]]
) -> tuple[list[IndexChange], list[str]]:
    """The changes on every collection the models use, and the collections compared.
    A collection that does not exist has every index missing.
    Collections no model names are not looked at (their indexes are not the models')."""
    changes: list[IndexChange] = []
    for collection, indexes in declared.items():
        changes += compare_collection(collection, indexes, list_indexes(db, collection))
    return changes, list(declared)


def _keys(keys: Sequence[tuple[str, Any]]) -> str:
    return "{" + ", ".join(f"{k}: {_literal(v)}" for k, v in keys) + "}"


# ---------------------------------------------------------------------------
# Writing the migration
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _Operation:
    """One line of ``up`` (a create, a drop, or a rebuild: a create that ``replaces``
    the index described by another operation) and the line that undoes it."""

    collection: str
    create: bool
    name: str
    keys: tuple[tuple[str, Any], ...]
    options: Mapping[str, Any] = field(default_factory=dict)
    active: bool = True  # False: written commented out
    replaces: _Operation | None = None

    @property
    def function(self) -> str:
        """The :class:`~alley.data.Step` method of the line."""
        if self.replaces is not None:
            return "rebuild_index"
        return "create_index" if self.create else "drop_index"

    def call(self) -> list[str]:
        if not self.create:
            return _call("drop_index", self.collection, None, {}, self.name)
        replaces = None if self.replaces is None else self.replaces.name
        return _call(self.function, self.collection, self.keys, self.options, self.name, replaces)

    def undo(self) -> _Operation:
        if self.replaces is not None:  # rebuild what was there, replacing this one
            plain = dataclasses.replace(self, replaces=None)
            return dataclasses.replace(self.replaces, active=self.active, replaces=plain)
        return dataclasses.replace(self, create=not self.create)


def operations(changes: Sequence[IndexChange], *, drop: bool) -> list[_Operation]:
    """``up``'s operations, by collection: rebuilds (``rebuild_index``: the old index
    replaced by the declared one), creations, then drops of what no model declares
    (inactive unless ``drop``)."""
    ops: list[_Operation] = []
    for collection in sorted({c.collection for c in changes}):
        mine = [c for c in changes if c.collection == collection]
        for change in (c for c in mine if c.kind == "differs"):
            was = _recreate(change.existing or {}, collection, create=True)
            ops.append(dataclasses.replace(_create(change), replaces=was))
        ops += [_create(c) for c in mine if c.kind == "missing"]
        ops += [
            _recreate(c.existing or {}, collection, create=False, active=drop)
            for c in mine
            if c.kind == "extra"
        ]
    return ops


def _create(change: IndexChange) -> _Operation:
    declared = change.declared
    assert declared is not None
    return _Operation(declared.collection, True, declared.name, declared.keys, declared.wanted)


def _recreate(
    index: Mapping[str, Any], collection: str, *, create: bool, active: bool = True
) -> _Operation:
    """The index as the server reports it: its keys and options, to drop or rebuild."""
    return _Operation(
        collection,
        create,
        str(index.get("name")),
        reported_keys(index),
        normalise_options(index),
        active,
    )


def render_migration(
    changes: Sequence[IndexChange], *, name: str, models: Sequence[str], drop: bool
) -> str:
    """The migration's source: ``up`` applies ``changes`` through the step's index
    helpers (``step.create_index``, ``step.rebuild_index``, ``step.drop_index``: each
    checks before it writes, and ``up --plan`` says what each would do), ``down``
    undoes ``up`` line by line in reverse. Grouped by collection, each group under a
    comment naming the models that declare it. Drops of indexes no model declares are
    commented out unless ``drop``. Code as ``ruff format`` writes it (double quotes,
    calls wrapped one argument a line past 88 characters)."""
    ops = operations(changes, drop=drop)
    undo = [op.undo() for op in reversed(ops)]
    counts = {
        kind: sum(1 for c in changes if c.kind == kind) for kind in ("missing", "differs", "extra")
    }
    summary = [
        f"- {counts['missing']} to create" if counts["missing"] else "",
        f"- {counts['differs']} to rebuild with the models' options" if counts["differs"] else "",
        (
            f"- {counts['extra']} that no model declares, to drop"
            + ("" if drop else " (commented out: --drop drops them)")
        )
        if counts["extra"]
        else "",
    ]
    lines = [
        f'"""{name}',
        "",
        f"Written by alley create --autogenerate from {', '.join(models)}. Indexes:",
        *[s for s in summary if s],
        '"""',
        "",
        "",
        "def up(db, step):",
        *_body(ops, changes, reverse=False),
        "",
        "",
        "def down(db, step):",
        *_body(undo, changes, reverse=True),
        "",
    ]
    return "\n".join(lines)


def _body(ops: Sequence[_Operation], changes: Sequence[IndexChange], *, reverse: bool) -> list[str]:
    lines: list[str] = []
    collection = None
    live = False
    for op in ops:
        if op.collection != collection:
            collection = op.collection
            if lines:
                lines.append("")
            lines.append(f"    # {collection}: {_owners(collection, changes)}")
        call = op.call()
        if op.active:
            live = True
            lines += [f"    {line}" for line in call]
        else:
            lines += [f"    # {line}" for line in call]
    if not live:
        lines.append("    pass")
    return lines


def _owners(collection: str, changes: Sequence[IndexChange]) -> str:
    owners = dict.fromkeys(
        by
        for c in changes
        if c.collection == collection and c.declared is not None
        for by in c.declared.declared_by
    )
    return ", ".join(owners) if owners else "no model declares these indexes"


def _call(
    function: str,
    collection: str,
    keys: Sequence[tuple[str, Any]] | None,
    options: Mapping[str, Any],
    name: str,
    replaces: str | None = None,
) -> list[str]:
    arguments = [_literal(collection)]
    if keys is not None:
        arguments.append("[" + ", ".join(f"({_literal(k)}, {_literal(v)})" for k, v in keys) + "]")
        arguments += [f"{k}={_literal(v)}" for k, v in options.items()]
        arguments.append(f"name={_literal(name)}")
        if replaces is not None:
            arguments.append(f"replaces={_literal(replaces)}")
    else:
        arguments.append(_literal(name))
    one_line = f"step.{function}({', '.join(arguments)})"
    if len(one_line) + 4 <= 88:
        return [one_line]
    return [f"step.{function}(", *[f"    {a}," for a in arguments], ")"]


def _literal(value: Any) -> str:
    """Python source for a plain value, with double quotes (as ruff format writes)."""
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if value is None or isinstance(value, bool | int | float):
        return repr(value)
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{_literal(k)}: {_literal(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_literal(v) for v in value) + "]"
    return repr(value)


__all__ = [
    "MONGOENGINE_META_KEYS",
    "MONGOENGINE_PRIVATE_NAMES",
    "DeclaredIndex",
    "IndexChange",
    "collection_of",
    "compare",
    "compare_collection",
    "declared_fields",
    "declared_indexes",
    "documents_of",
    "import_models",
    "indexes_of",
    "option_differences",
    "qualified_name",
    "render_migration",
]
