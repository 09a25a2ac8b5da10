"""Index helpers for migrations: create only what is missing, drop what is there.

Plain PyMongo functions, usable with or without a migration's ``step``
(``step.create_index`` and ``step.drop_index`` call them):

- :func:`ensure_index` builds an index unless an equivalent one exists (same keys and
  same options, compared the way the server reports them), refuses one whose name is
  taken by other keys or options (:class:`~alley.errors.IndexConflict`), and before a
  unique build looks for documents that repeat the keys
  (:class:`~alley.errors.DuplicateKeys`, nothing built). The build is the server's
  default one: no ``background`` option (ignored since MongoDB 4.2).
- :func:`drop_index` drops by name or by keys; an index that is not there is a no-op,
  and the result says so.
- :func:`rebuild_index` replaces an index with one of other options or keys, checking
  first what could refuse the new one, and putting the old one back if the build fails.
- :func:`is_large` says whether a collection holds ``large_collection`` documents or
  more (``estimated_document_count``; default 1,000,000).

Given the read-only database of ``alley up --plan`` (:mod:`alley.dry_run`), they read
what they need, write nothing, and record what they would do for the plan.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pymongo.errors import OperationFailure

from alley.errors import DuplicateKeys, IndexConflict, IndexUnsupported, UsageError

#: The default of the ``large_collection`` setting: a collection with this many
#: documents or more is "large" (index builds and backfills on it take a while).
LARGE_COLLECTION = 1_000_000

#: What ``list_indexes`` reports that is not an option of the index itself, or is one
#: at its default value (absent and default mean the same index).
_NOT_OPTIONS = frozenset({"v", "ns", "key", "name", "background", "dropDups"})
_DEFAULTS: dict[str, Any] = {
    "unique": False,
    "sparse": False,
    "hidden": False,
    "default_language": "english",  # text indexes: MongoDB reports its defaults
    "language_override": "language",
}
#: Reported by the server, never given by a user: versions of index formats.
_SERVER_ONLY = frozenset({"textIndexVersion", "2dsphereIndexVersion"})

#: ``createIndexes`` code 238 (NotImplemented): FerretDB 1.24 for TTL, partial and
#: collation indexes.
_NOT_IMPLEMENTED = 238
_INDEX_CONFLICT_CODES = (85, 86)  # IndexOptionsConflict, IndexKeySpecsConflict

Keys = str | Sequence[tuple[str, Any]] | Mapping[str, Any]


@dataclass(frozen=True)
class IndexResult:
    """What :func:`ensure_index` or :func:`drop_index` did (or, in a plan, would do).

    ``created``: this call built the index. ``dropped``: this call dropped it.
    ``existed``: it was there before the call (an equivalent index for
    :func:`ensure_index`, the named one for :func:`drop_index`). ``planned``: a dry run,
    nothing was done; ``conflict`` then says why the real call would fail.
    """

    name: str
    created: bool
    collection: str = ""
    keys: tuple[tuple[str, Any], ...] = ()
    dropped: bool = False
    existed: bool = False
    planned: bool = False
    conflict: str | None = None
    documents: int | None = None
    large: bool = False
    replaced: str | None = None

    # Whether the result is a drop's (kept out of the documented signature).
    _drop: bool = field(default=False, repr=False)

    @property
    def action(self) -> str:
        """``created``, ``exists``, ``dropped``, ``missing`` (nothing to drop),
        ``rebuilt``; in a plan ``to create``, ``to drop``, ``to rebuild`` or
        ``conflicts``."""
        if self.conflict is not None:
            return "conflicts"
        if self.replaced is not None and not self.existed:
            return "to rebuild" if self.planned else "rebuilt"
        if self._drop:
            if self.planned:
                return "to drop" if self.existed else "missing"
            return "dropped" if self.dropped else "missing"
        if self.planned:
            return "exists" if self.existed else "to create"
        return "created" if self.created else "exists"

    def describe(self) -> str:
        """``index users email_1: to create (large collection: ~2.3M documents)``."""
        text = f"index {self.collection} {self.name}: {self.action}"
        if self.replaced is not None and self.replaced != self.name and not self.existed:
            text += f" (replacing {self.replaced})"
        if self.conflict is not None:
            text += f": {self.conflict}"
        if self.large and self.documents is not None and self.action in ("to create", "created"):
            text += f" (large collection: ~{human_count(self.documents)} documents)"
        return text


def human_count(n: int) -> str:
    """``2300000`` → ``2.3M``, ``12500`` → ``12.5k``; small numbers as they are."""
    for size, suffix in ((1_000_000_000, "G"), (1_000_000, "M"), (1_000, "k")):
        if n >= size:
            return f"{n / size:.1f}".rstrip("0").rstrip(".") + suffix
    return str(n)


# ---------------------------------------------------------------------------
# Normalising what the server reports
# ---------------------------------------------------------------------------


def normalise_keys(keys: Keys) -> tuple[tuple[str, Any], ...]:
    """Keys in their order, each direction as the server compares it: ``1.0`` and ``1``
    are the same ascending key (the shell writes doubles); ``"text"``, ``"hashed"``,
    ``"2dsphere"`` stay strings. A plain string is one ascending key, as in PyMongo."""
    if isinstance(keys, str):
        pairs: list[tuple[str, Any]] = [(keys, 1)]
    elif isinstance(keys, Mapping):
        pairs = list(keys.items())
    else:
        pairs = []
        for item in keys:
            item_: Any = item  # a bare field name inside a list is accepted too
            if isinstance(item_, str):
                pairs.append((item_, 1))
            else:
                name, direction = item_
                pairs.append((name, direction))
    if not pairs:
        raise UsageError("an index needs at least one key")
    return tuple((str(name), _number(direction)) for name, direction in pairs)


def reported_keys(index: Mapping[str, Any]) -> tuple[tuple[str, Any], ...]:
    """An index's keys from ``list_indexes``, comparable with what was asked: MongoDB
    reports a text index as ``_fts: "text", _ftsx: 1`` with its fields in ``weights``;
    they become ``(field, "text")`` again, in the order :func:`comparable_keys` gives."""
    key = index.get("key") or {"?": 1}
    pairs = list(normalise_keys(key))
    names = [name for name, _ in pairs]
    if "_fts" in names:
        weights = index.get("weights") or {}
        at = names.index("_fts")
        text = [(str(field), "text") for field in weights]
        pairs = [*pairs[:at], *text, *[p for p in pairs[at + 1 :] if p[0] != "_ftsx"]]
    return comparable_keys(pairs)


def comparable_keys(keys: Keys) -> tuple[tuple[str, Any], ...]:
    """Keys as compared: in order, except that the fields of a text index (whose order
    the server does not keep) are sorted, where the first one is."""
    pairs = list(normalise_keys(keys))
    text = sorted(p for p in pairs if p[1] == "text")
    if not text:
        return tuple(pairs)
    first = next(i for i, p in enumerate(pairs) if p[1] == "text")
    rest = [p for p in pairs if p[1] != "text"]
    return tuple(rest[:first] + text + rest[first:])


def index_name(keys: Keys) -> str:
    """The name the server gives an index without ``name``: ``email_1``, ``a_1_b_-1``."""
    return "_".join(f"{name}_{direction}" for name, direction in normalise_keys(keys))


def normalise_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """The options that make two indexes different, as :func:`ensure_index` compares
    them: without ``v``, ``ns``, ``name``, ``background`` and server-added versions,
    without options at their default (``unique: False``, ``sparse: False``), numbers
    as the server compares them (``60.0`` → ``60``), sub-documents as plain dicts."""
    normalised: dict[str, Any] = {}
    for name, value in options.items():
        if name in _NOT_OPTIONS or name in _SERVER_ONLY:
            continue
        plain = _plain(value)
        if name in _DEFAULTS and plain == _DEFAULTS[name]:
            continue
        if name == "weights" and isinstance(plain, dict):
            # a text field's weight is 1 unless given: MongoDB lists every field's,
            # mongo-java-server only those given
            plain = {k: v for k, v in plain.items() if v != 1}
            if not plain:
                continue
        normalised[name] = plain
    return normalised


def differences(wanted: Mapping[str, Any], reported: Mapping[str, Any]) -> list[str]:
    """How a reported index (``list_indexes`` output) differs from the normalised
    options ``wanted``; empty when equivalent. A ``collation`` is compared on the fields
    given (MongoDB reports every field of a collation, filled with its locale's
    defaults)."""
    have = normalise_options(reported)
    found: list[str] = []
    for name in sorted(set(wanted) | set(have)):
        mine, theirs = wanted.get(name), have.get(name)
        if name == "collation" and isinstance(mine, dict) and isinstance(theirs, dict):
            if any(theirs.get(k) != v for k, v in mine.items() if k != "version"):
                found.append(f"collation {theirs} instead of {mine}")
        elif mine != theirs:
            if mine is None:
                found.append(f"it has {name}={theirs!r}")
            elif theirs is None:
                found.append(f"it lacks {name}={mine!r}")
            else:
                found.append(f"{name}={theirs!r} instead of {mine!r}")
    return found


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return _number(value)


def _number(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if hasattr(value, "to_decimal") and not isinstance(value, bool):  # Decimal128
        decimal = value.to_decimal()
        return int(decimal) if decimal == int(decimal) else float(decimal)
    return value


def list_indexes(db: Any, collection: str) -> list[dict[str, Any]]:
    """``list_indexes`` as plain dicts (a missing collection has none)."""
    try:
        return [dict(index) for index in db[collection].list_indexes()]
    except OperationFailure as error:
        if error.code == 26:  # NamespaceNotFound (MongoDB before 4.4 raised it)
            return []
        raise


def _describe_index(index: Mapping[str, Any]) -> str:
    keys = dict(reported_keys(index))
    options = normalise_options(index)
    extra = "".join(f", {k}={v!r}" for k, v in options.items())
    return f"{index.get('name')} {keys}{extra}"


# ---------------------------------------------------------------------------
# The helpers
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _Decision:
    name: str
    existing: dict[str, Any] | None  # an equivalent index that is there
    conflict: str | None


def _decide(
    indexes: Sequence[Mapping[str, Any]],
    collection: str,
    keys: tuple[tuple[str, Any], ...],
    name: str,
    wanted: dict[str, Any],
) -> _Decision:
    for index in indexes:
        if reported_keys(index) == comparable_keys(keys) and not differences(wanted, index):
            return _Decision(str(index.get("name")), dict(index), None)
    for index in indexes:
        if index.get("name") == name:
            there = reported_keys(index)
            other_keys = there != comparable_keys(keys)
            what = (
                f"keys {dict(there)} instead of {dict(keys)}"
                if other_keys
                else "; ".join(differences(wanted, index))
            )
            return _Decision(
                name,
                None,
                f"index {name} on {collection} exists with other "
                f"{'keys' if other_keys else 'options'}: {what} "
                f"(there: {_describe_index(index)})",
            )
    return _Decision(name, None, None)


def ensure_index(db: Any, collection: str, keys: Keys, **options: Any) -> IndexResult:
    """Create the index unless an equivalent one is there.

    :param db: a PyMongo ``Database`` (or ``step.db``).
    :param keys: ``"email"``, ``[("email", 1), ("at", -1)]`` or an ordered mapping.
    :param options: ``create_index`` options: ``name``, ``unique``, ``sparse``,
        ``partialFilterExpression``, ``expireAfterSeconds``, ``collation``, ...
        (``background`` is dropped: the server's default build is used).
    :returns: ``created=True`` when this call built it; ``created=False`` with
        ``existed=True`` when an equivalent index (same keys and options, whatever its
        name) was there already.
    :raises IndexConflict: the name (given, or generated from the keys) is taken by an
        index with other keys or options; nothing was built.
    :raises DuplicateKeys: ``unique=True`` and documents repeat the keys (the first
        duplicate values and how many documents share them are named); nothing built.
    :raises IndexUnsupported: the server refused an option, or built the index without
        it (FerretDB 1.24 ignores ``sparse``: the index is dropped again).
    """
    from alley.dry_run import recorder_of

    normalised = normalise_keys(keys)
    options = {k: v for k, v in options.items() if k != "background"}
    name = str(options.get("name") or index_name(normalised))
    wanted = normalise_options(options)
    decision = _decide(list_indexes(db, collection), collection, normalised, name, wanted)
    recorder = recorder_of(db)

    if recorder is not None:  # a plan: read, record, write nothing
        documents = _estimate(db, collection)
        threshold = recorder.large_collection
        conflict = decision.conflict
        if (
            conflict is None
            and decision.existing is None
            and wanted.get("unique")
            and documents < threshold
        ):
            duplicate = find_duplicates(db, collection, normalised, options)
            if duplicate is not None:
                conflict = _duplicates_message(collection, name, *duplicate)
        result = IndexResult(
            decision.name,
            False,
            collection,
            normalised,
            existed=decision.existing is not None,
            planned=True,
            conflict=conflict,
            documents=documents,
            large=documents >= threshold,
        )
        recorder.record(result)
        return result

    if decision.conflict is not None:
        raise IndexConflict(
            decision.conflict,
            hint="drop it first (drop_index), or give this index another name",
        )
    if decision.existing is not None:
        return IndexResult(decision.name, False, collection, normalised, existed=True)

    if wanted.get("unique"):
        duplicate = find_duplicates(db, collection, normalised, options)
        if duplicate is not None:
            raise _duplicates_error(collection, name, duplicate, "nothing was built")
    try:
        created = db[collection].create_index(list(normalised), **options)
    except OperationFailure as error:
        if error.code == _NOT_IMPLEMENTED:
            raise IndexUnsupported(
                f"the server cannot build index {name} on {collection}: "
                f"{error.details.get('errmsg') if error.details else error}",
                hint="see docs/api.md#index-helpers for the options each server supports",
            ) from error
        if error.code in _INDEX_CONFLICT_CODES:
            raise IndexConflict(
                f"index {name} on {collection} conflicts with an index there: "
                f"{error.details.get('errmsg') if error.details else error}",
                hint="drop the other index first, or change this one",
            ) from error
        raise
    _check_built(db, collection, str(created), normalised, wanted)
    return IndexResult(str(created), True, collection, normalised)


def _check_built(
    db: Any,
    collection: str,
    name: str,
    keys: tuple[tuple[str, Any], ...],
    wanted: dict[str, Any],
) -> None:
    """Refuse an index the server built without an option it was given (FerretDB 1.24
    ignores ``sparse``, and answers ``createIndexes`` of a taken name with success):
    drop what this call built, and say which option the server dropped."""
    built = next((i for i in list_indexes(db, collection) if i.get("name") == name), None)
    if built is None:
        return
    missing = differences(wanted, built)
    if not missing and reported_keys(built) == comparable_keys(keys):
        return
    db[collection].drop_index(name)
    raise IndexUnsupported(
        f"the server built index {name} on {collection} without what was asked "
        f"({'; '.join(missing) or 'other keys'}); it was dropped again",
        hint="this server does not support that option (FerretDB 1.24 ignores sparse)",
    )


def drop_index(db: Any, collection: str, name_or_keys: Keys) -> IndexResult:
    """Drop an index by name (``"email_1"``) or by keys (``[("email", 1)]``).

    An index that is not there (or a collection that is not) is a no-op: the result
    has ``dropped=False`` and ``existed=False`` (``action == "missing"``). By keys, the
    index whose key pattern matches is dropped; when several do (differing in
    collation or partial filter), :class:`~alley.errors.IndexConflict` asks for a name.
    ``_id_`` is never dropped (:class:`~alley.errors.UsageError`).
    """
    from alley.dry_run import recorder_of

    indexes = list_indexes(db, collection)
    keys: tuple[tuple[str, Any], ...] = ()
    if isinstance(name_or_keys, str) and any(i.get("name") == name_or_keys for i in indexes):
        name = name_or_keys
        found = next(i for i in indexes if i.get("name") == name)
        keys = reported_keys(found)
    elif isinstance(name_or_keys, str) and not _looks_like_keys(name_or_keys, indexes):
        name = name_or_keys
    else:
        keys = normalise_keys(name_or_keys)
        matching = [i for i in indexes if reported_keys(i) == comparable_keys(keys)]
        if len(matching) > 1:
            names = ", ".join(str(i.get("name")) for i in matching)
            raise IndexConflict(
                f"{len(matching)} indexes on {collection} have keys {dict(keys)}: {names}",
                hint="drop one by its name",
            )
        name = str(matching[0].get("name")) if matching else index_name(keys)
    if name == "_id_":
        raise UsageError(f"the _id_ index of {collection} cannot be dropped")
    there = any(i.get("name") == name for i in indexes)
    recorder = recorder_of(db)
    if recorder is not None:
        result = IndexResult(
            name, False, collection, keys, dropped=there, existed=there, planned=True, _drop=True
        )
        recorder.record(result)
        return result
    if not there:
        return IndexResult(name, False, collection, keys, _drop=True)
    try:
        db[collection].drop_index(name)
    except OperationFailure as error:
        if error.code == 27:  # IndexNotFound: dropped meanwhile, as asked
            return IndexResult(name, False, collection, keys, _drop=True)
        raise
    return IndexResult(name, False, collection, keys, dropped=True, existed=True, _drop=True)


def rebuild_index(
    db: Any, collection: str, keys: Keys, *, replaces: str, **options: Any
) -> IndexResult:
    """Replace the index named ``replaces`` with one of ``keys`` and ``options``: what
    ``alley create --autogenerate`` writes for an index the models declare with other
    options or keys (``unique`` added, another TTL).

    The server cannot hold both (same keys, or same name), so the old index goes
    first; what could refuse the new one is checked before it does: documents that
    repeat the keys of a unique index (:class:`~alley.errors.DuplicateKeys`), and its
    name taken by a third index (:class:`~alley.errors.IndexConflict`) -- nothing is
    dropped then. If the build still fails (the server refuses an option), the old
    index is built again before the error is raised, so a failed step leaves the
    collection's indexes as they were. An equivalent index there already: nothing is
    done (``existed``), so running it again is harmless. In a plan: one ``to rebuild``
    action, with the duplicates as its conflict.
    """
    from alley.dry_run import recorder_of

    normalised = normalise_keys(keys)
    options = {k: v for k, v in options.items() if k != "background"}
    name = str(options.get("name") or index_name(normalised))
    wanted = normalise_options(options)
    indexes = list_indexes(db, collection)
    old = next((i for i in indexes if i.get("name") == replaces), None)
    decision = _decide(indexes, collection, normalised, name, wanted)
    if decision.existing is not None:  # done already (a second run), or never needed
        if old is not None and decision.name != replaces:
            drop_index(db, collection, replaces)
        return ensure_index(db, collection, normalised, **options)
    others = [i for i in indexes if i.get("name") != replaces]
    taken = _decide(others, collection, normalised, name, wanted).conflict
    duplicate = None
    recorder = recorder_of(db)
    documents = _estimate(db, collection) if recorder is not None else 0
    if (
        taken is None
        and wanted.get("unique")
        and (recorder is None or documents < recorder.large_collection)
    ):
        duplicate = find_duplicates(db, collection, normalised, options)
    conflict = taken
    if conflict is None and duplicate is not None:
        conflict = _duplicates_message(collection, name, *duplicate)
    if recorder is not None:
        result = IndexResult(
            name,
            False,
            collection,
            normalised,
            planned=True,
            conflict=conflict,
            documents=documents,
            large=documents >= recorder.large_collection,
            replaced=replaces,
        )
        recorder.record(result)
        return result
    if taken is not None:
        raise IndexConflict(taken, hint=f"drop it first; {replaces} was not dropped")
    if duplicate is not None:
        raise _duplicates_error(collection, name, duplicate, f"{replaces} was not dropped")
    drop_index(db, collection, replaces)
    try:
        ensure_index(db, collection, normalised, **options)
    except Exception:
        if old is not None:  # put back what was there: the step then changed nothing
            db[collection].create_index(
                list(reported_keys(old)), name=replaces, **normalise_options(old)
            )
        raise
    return IndexResult(name, True, collection, normalised, replaced=replaces)


def _looks_like_keys(text: str, indexes: Sequence[Mapping[str, Any]]) -> bool:
    """A bare field name given to :func:`drop_index` (``"email"``) means its ascending
    index when no index has that name."""
    return any(reported_keys(i) == ((text, 1),) for i in indexes)


# ---------------------------------------------------------------------------
# Duplicates and size
# ---------------------------------------------------------------------------


def find_duplicates(
    db: Any,
    collection: str,
    keys: Keys,
    options: Mapping[str, Any] | None = None,
) -> tuple[dict[str, Any], int] | None:
    """The first key values that more than one document shares, and how many do.

    One aggregation (``$group`` by the key fields, ``$match`` count > 1, ``$limit 1``,
    ``allowDiskUse``) over the documents the index would hold: those matching its
    ``partialFilterExpression``, and for a ``sparse`` one those having a key field. A
    missing field and ``null`` count as the same value (as a unique index sees them),
    where the server has ``$ifNull`` (FerretDB 1.24 has not: there they differ, as in
    its unique indexes). Array values are compared whole (a multikey index compares
    their elements; the build itself still refuses those duplicates).
    """
    normalised = normalise_keys(keys)
    options = options or {}
    fields = [name for name, _ in normalised]
    pipeline: list[dict[str, Any]] = []
    if options.get("partialFilterExpression"):
        pipeline.append({"$match": dict(options["partialFilterExpression"])})
    if options.get("sparse"):
        pipeline.append({"$match": {"$or": [{f: {"$exists": True}} for f in fields]}})

    def group(by: dict[str, Any]) -> list[dict[str, Any]]:
        return [
            *pipeline,
            {"$group": {"_id": by, "count": {"$sum": 1}}},
            {"$match": {"count": {"$gt": 1}}},
            {"$limit": 1},
        ]

    plain = {f"k{i}": f"${f}" for i, f in enumerate(fields)}
    null_aware = {f"k{i}": {"$ifNull": [f"${f}", None]} for i, f in enumerate(fields)}
    try:
        found = list(db[collection].aggregate(group(null_aware), allowDiskUse=True))
    except OperationFailure as error:
        if error.code != _NOT_IMPLEMENTED:
            raise
        found = list(db[collection].aggregate(group(plain), allowDiskUse=True))
    if not found:
        return None
    first = found[0]
    key = first.get("_id") or {}
    values = {f: key.get(f"k{i}") for i, f in enumerate(fields)}
    return values, int(first.get("count", 0))


def _duplicates_message(collection: str, name: str, values: dict[str, Any], count: int) -> str:
    shown = ", ".join(f"{k}={v!r}" for k, v in values.items())
    return (
        f"cannot build unique index {name} on {collection}: {count} documents share "
        f"{shown} (the first duplicate found)"
    )


def _duplicates_error(
    collection: str, name: str, duplicate: tuple[dict[str, Any], int], outcome: str
) -> DuplicateKeys:
    values, count = duplicate
    return DuplicateKeys(
        _duplicates_message(collection, name, values, count),
        keys=values,
        count=count,
        hint=f"remove or merge the duplicates first; {outcome}",
    )


def _estimate(db: Any, collection: str) -> int:
    return int(db[collection].estimated_document_count())


def large_collection_threshold(settings: Any = None) -> int:
    """The ``large_collection`` setting (``-o large_collection=N``, ``[tool.alley]``),
    else :data:`LARGE_COLLECTION`."""
    options = getattr(settings, "options", None) or {}
    value = options.get("large_collection", LARGE_COLLECTION)
    try:
        threshold = int(str(value).replace("_", ""))
    except ValueError as error:
        from alley.errors import ConfigError

        raise ConfigError(
            f"invalid large_collection {value!r}", hint="give a number of documents"
        ) from error
    return threshold


def is_large(db: Any, collection: str, threshold: int | None = None) -> bool:
    """Whether ``collection`` holds ``threshold`` documents or more, by
    ``estimated_document_count()`` (metadata, no scan). ``threshold`` defaults to the
    ``large_collection`` setting of the plan running, else 1,000,000."""
    if threshold is None:
        from alley.dry_run import recorder_of

        recorder = recorder_of(db)
        threshold = recorder.large_collection if recorder is not None else LARGE_COLLECTION
    return _estimate(db, collection) >= threshold


__all__ = [
    "LARGE_COLLECTION",
    "IndexResult",
    "comparable_keys",
    "drop_index",
    "ensure_index",
    "find_duplicates",
    "human_count",
    "index_name",
    "is_large",
    "large_collection_threshold",
    "normalise_keys",
    "normalise_options",
    "rebuild_index",
    "reported_keys",
]
