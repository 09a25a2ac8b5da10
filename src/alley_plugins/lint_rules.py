"""alley's built-in lint rules (``alley lint``, and the error ones in ``up``'s pre-flight).

Each rule reads a migration's syntax tree (:class:`alley.lint.Source`); none imports the
migration or connects. A call counts as a collection's method when it is made on
something reached from ``up``/``down``'s ``db`` (``db.users.save(...)``,
``db["x"].count()``, ``users = db.users; users.remove(...)``), so ``some_dict.update()``
and alley's own helpers (``step.create_index``, ``alley.indexes.ensure_index``) are not
mistaken for PyMongo 3 calls.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator, Sequence

from alley.hookspecs import hookimpl
from alley.lint import Rule, Severity, Source, root_name

#: Collection methods PyMongo 4 removed, with what replaces each.
REMOVED = {
    "insert": "insert_one() or insert_many()",
    "save": "insert_one() or replace_one(..., upsert=True)",
    "update": "update_one() or update_many()",
    "remove": "delete_one() or delete_many()",
    "find_and_modify": "find_one_and_update(), find_one_and_replace() or find_one_and_delete()",
    "ensure_index": "create_index() (or alley.indexes.ensure_index)",
    "count": "count_documents() or estimated_document_count()",
}

INDEX_CREATION = ("create_index", "create_indexes", "create_search_index", "create_search_indexes")


def pymongo3_removed(source: Source) -> Iterator[tuple[int, str]]:
    for call, name in source.method_calls(REMOVED):
        yield call.lineno, f"{name}() was removed in PyMongo 4: use {REMOVED[name]}"


def missing_down(source: Source) -> Iterator[tuple[int, str]]:
    if "down" not in source.functions:
        yield 1, "no down(db) function: up refuses a migration it could not roll back"


def _is_empty(body: Sequence[ast.stmt]) -> bool:
    for statement in body:
        if isinstance(statement, ast.Pass):
            continue
        if isinstance(statement, ast.Expr) and isinstance(statement.value, ast.Constant):
            continue  # a docstring, or ``...``
        return False
    return True


def empty_down(source: Source) -> Iterator[tuple[int, str]]:
    down = source.functions.get("down")
    if down is not None and _is_empty(down.body):
        yield down.lineno, "down() does nothing: rolling back leaves up's changes in place"


def _empty_filter(call: ast.Call) -> bool:
    if not call.args:
        return not any(k.arg == "filter" for k in call.keywords)
    first = call.args[0]
    return isinstance(first, ast.Dict) and not first.keys


def destructive(source: Source) -> Iterator[tuple[int, str]]:
    """In anything but ``down`` (which undoes what ``up`` created, often by dropping it).

    With the ``models`` setting (:attr:`Source.model_fields`), an ``$unset`` counts only
    when it removes a field a model declares: of the collection the call is made on
    when the file says which (``db.users.update_many(...)``, ``db["users"]``), of any
    model otherwise; an ``$unset`` whose fields are not written out counts always."""
    for call, name in source.method_calls(("drop", "drop_collection", "drop_database")):
        if not source.inside("down", call):
            yield call.lineno, f"{name}() deletes data for good: make sure down can restore it"
    for call, _ in source.method_calls(("delete_many",)):
        if not source.inside("down", call) and _empty_filter(call):
            yield call.lineno, "delete_many({}) deletes every document of the collection"
    collections = _call_collections(source)
    for node in ast.walk(source.tree):
        if isinstance(node, ast.Dict) and not source.inside("down", node):
            for key, value in zip(node.keys, node.values, strict=True):
                if isinstance(key, ast.Constant) and key.value == "$unset":
                    message = _unset_finding(source, value, collections.get(id(node)))
                    if message is not None:
                        yield key.lineno, message


def _call_collections(source: Source) -> dict[int, str]:
    """For each dict literal given to a collection's method whose collection the file
    names (``db.users.update_many({...}, {...})``, ``db["users"]...``), that name."""
    found: dict[int, str] = {}
    for node in ast.walk(source.tree):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
            continue
        receiver = node.func.value
        if root_name(receiver) not in source.database_names:
            continue
        name = None
        if isinstance(receiver, ast.Attribute) and isinstance(receiver.value, ast.Name):
            name = receiver.attr
        elif isinstance(receiver, ast.Subscript) and isinstance(receiver.slice, ast.Constant):
            name = str(receiver.slice.value)
        if name is None:
            continue
        for argument in [*node.args, *(k.value for k in node.keywords)]:
            for inner in ast.walk(argument):
                if isinstance(inner, ast.Dict):
                    found[id(inner)] = name
    return found


def _unset_finding(source: Source, value: ast.expr, collection: str | None) -> str | None:
    generic = "$unset removes a field's values: down cannot restore them"
    models = source.model_fields
    if models is None:
        return generic
    if not isinstance(value, ast.Dict) or not all(
        isinstance(k, ast.Constant) and isinstance(k.value, str) for k in value.keys
    ):
        return generic  # the fields are computed: they may be declared ones
    if collection is not None:
        declared = dict(models.get(collection, {}))
    else:
        declared = {f: by for fields in models.values() for f, by in fields.items()}
    for key in value.keys:
        assert isinstance(key, ast.Constant)
        field = str(key.value).split(".", 1)[0]
        if field in declared:
            where = f"{collection}." if collection else ""
            return (
                f"$unset removes {where}{field}, which {declared[field]} declares: "
                "down cannot restore its values"
            )
    return None


def _has_duplicate_check(source: Source) -> bool:
    """``alley.indexes.find_duplicates`` or an aggregation with ``$group``."""
    for node in ast.walk(source.tree):
        if isinstance(node, ast.Name | ast.Attribute):
            name = node.id if isinstance(node, ast.Name) else node.attr
            if name == "find_duplicates":
                return True
        if isinstance(node, ast.Constant) and node.value == "$group":
            return True
    return False


def unique_without_check(source: Source) -> Iterator[tuple[int, str]]:
    if _has_duplicate_check(source):
        return
    for call, name in source.method_calls(("create_index",)):
        unique = any(
            k.arg == "unique" and isinstance(k.value, ast.Constant) and k.value.value is True
            for k in call.keywords
        )
        if unique:
            yield (
                call.lineno,
                (
                    f"{name}(..., unique=True) with no duplicate pre-check: it fails half-way on "
                    "existing duplicates (use step.create_index or alley.indexes.ensure_index, "
                    "which check first)"
                ),
            )


def _transactional(source: Source) -> bool:
    for node in source.tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "transaction" for t in node.targets
        ):
            return isinstance(node.value, ast.Constant) and node.value.value is True
    return False


def index_in_transaction(source: Source) -> Iterator[tuple[int, str]]:
    if not _transactional(source):
        return
    for node in ast.walk(source.tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
        if name in INDEX_CREATION or name == "ensure_index":
            yield (
                node.lineno,
                (
                    f"{name}() in a migration with transaction = True: a transaction cannot "
                    "build indexes (create the index in a migration without a transaction)"
                ),
            )


RULES = (
    Rule(
        "pymongo3-removed",
        Severity.ERROR,
        pymongo3_removed,
        "a collection method PyMongo 4 removed (insert, save, update, remove, "
        "find_and_modify, ensure_index, count)",
    ),
    Rule("missing-down", Severity.ERROR, missing_down, "no down(db) function"),
    Rule("empty-down", Severity.WARNING, empty_down, "a down(db) that does nothing"),
    Rule(
        "destructive",
        Severity.WARNING,
        destructive,
        "drop, drop_collection, drop_database, delete_many({}) or $unset outside down",
    ),
    Rule(
        "unique-without-check",
        Severity.WARNING,
        unique_without_check,
        "create_index(..., unique=True) with no duplicate pre-check in the file",
    ),
    Rule(
        "index-in-transaction",
        Severity.ERROR,
        index_in_transaction,
        "index creation in a migration with transaction = True",
    ),
)


@hookimpl(trylast=True)
def alley_lint_rules() -> Sequence[Rule]:
    return RULES
