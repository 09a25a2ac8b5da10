"""Static checks of migration files: ``alley lint``, and the error rules of ``up``'s pre-flight.

Pure: it reads migration source text with :mod:`ast` and never imports pymongo or
connects, so ``lint`` works where no server is reachable (a CI job, an editor hook).
The rules themselves come from plugins (:func:`alley.hookspecs.alley_lint_rules`);
the built-in ones are the default plugin ``alley_plugins.lint_rules``. This module
parses once per file, asks each rule for its findings, and drops the silenced ones:

- ``# alley: ignore[rule-id, other-id]`` on a line silences those rules on that line;
- ``# alley: ignore`` silences every rule on that line;
- ``[tool.alley] lint_ignore = ["rule-id"]`` silences a rule in the whole project.
"""

from __future__ import annotations

import ast
import io
import re
import tokenize
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from functools import cached_property
from typing import Any


class Severity(StrEnum):
    """An error refuses ``up`` and makes ``lint`` exit non-zero; a warning only informs."""

    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True)
class Source:
    """One migration file as the rules see it: its text and its parsed tree.

    :ivar filename: the migration's file name (``0003_add_users.py``).
    :ivar location: where it came from (a path or URL), printed in findings.
    :ivar text: the Python source.
    :ivar tree: the module's syntax tree (``ast.parse(text)``).
    :ivar model_fields: with the ``models`` setting, the fields the project's models
        declare: by collection, each field's stored name and the model declaring it
        (:func:`alley.model_indexes.declared_fields`); ``None`` without it.
    """

    filename: str
    location: str
    text: str
    tree: ast.Module
    model_fields: Mapping[str, Mapping[str, str]] | None = None

    @cached_property
    def functions(self) -> dict[str, ast.FunctionDef | ast.AsyncFunctionDef]:
        """The module-level functions by name (``up``, ``down``, helpers)."""
        return {
            node.name: node
            for node in self.tree.body
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        }

    @cached_property
    def database_names(self) -> frozenset[str]:
        """Names that hold the database or something reached from it: the parameters
        of ``up``/``down`` (``db``, ``step``), ``db`` itself, and every name assigned
        from an expression rooted at one of these (``users = db.users``)."""
        names = {"db"}
        for name in ("up", "down"):
            function = self.functions.get(name)
            if function is not None:
                names.update(a.arg for a in function.args.posonlyargs + function.args.args)
        assignments = [n for n in ast.walk(self.tree) if isinstance(n, ast.Assign)]
        grew = True
        while grew:
            grew = False
            for assignment in assignments:
                if root_name(assignment.value) in names:
                    for target in assignment.targets:
                        if isinstance(target, ast.Name) and target.id not in names:
                            names.add(target.id)
                            grew = True
        return frozenset(names - self.imported_names)

    @cached_property
    def imported_names(self) -> frozenset[str]:
        """Names bound by ``import``: ``indexes.ensure_index(...)`` is alley's helper,
        not a collection's method."""
        names: set[str] = set()
        for node in ast.walk(self.tree):
            if isinstance(node, ast.Import | ast.ImportFrom):
                for alias in node.names:
                    names.add((alias.asname or alias.name).split(".")[0])
        return frozenset(names)

    @cached_property
    def helpers(self) -> frozenset[str]:
        """The parameters of ``up`` and ``down`` after ``db`` (``step``: alley's helpers)."""
        names: set[str] = set()
        for name in ("up", "down"):
            function = self.functions.get(name)
            if function is not None:
                names.update(a.arg for a in (function.args.posonlyargs + function.args.args)[1:])
        return frozenset(names)

    def method_calls(self, names: Iterable[str]) -> Iterator[tuple[ast.Call, str]]:
        """Every call ``X.name(...)`` of one of ``names`` on something reached from the
        database (``db.users.save(...)``, ``db["x"].count()``, ``users.drop()``), not on
        ``step`` (alley's helpers)."""
        wanted = set(names)
        for node in ast.walk(self.tree):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in wanted
            ):
                receiver = node.func.value
                if isinstance(receiver, ast.Name) and receiver.id in self.helpers:
                    continue
                if root_name(receiver) in self.database_names:
                    yield node, node.func.attr

    def inside(self, function_name: str, node: ast.AST) -> bool:
        """Whether ``node`` is in the module-level function ``function_name``."""
        function = self.functions.get(function_name)
        if function is None:
            return False
        line = getattr(node, "lineno", 0)
        return function.lineno <= line <= (function.end_lineno or function.lineno)


def root_name(node: ast.AST) -> str | None:
    """The name an expression starts from: ``db`` for ``db.users``, ``db["x"]``,
    ``db.get_collection("x").find()``; ``None`` for anything else (a literal)."""
    while True:
        if isinstance(node, ast.Name):
            return node.id
        if isinstance(node, ast.Attribute | ast.Subscript):
            node = node.value
        elif isinstance(node, ast.Call):
            node = node.func
        elif isinstance(node, ast.Await):
            node = node.value
        else:
            return None


#: A rule's check: the ``(line, message)`` of each problem it finds in a file.
Check = Callable[[Source], Iterable[tuple[int, str]]]


@dataclass(frozen=True)
class Rule:
    """A lint rule, as a plugin provides it (:func:`alley.hookspecs.alley_lint_rules`).

    :ivar id: what findings print and ``ignore[...]`` names (``pymongo3-removed``).
    :ivar severity: :attr:`Severity.ERROR` refuses ``up``; a warning does not.
    :ivar check: called with each file's :class:`Source`; returns ``(line, message)``
        pairs.
    :ivar summary: one line for the docs and ``--json``.
    """

    id: str
    severity: Severity
    check: Check
    summary: str = ""


@dataclass(frozen=True)
class Finding:
    """One problem: ``FILE:LINE: RULE-ID message``."""

    location: str
    line: int
    rule: str
    severity: Severity
    message: str

    def __str__(self) -> str:
        return f"{self.location}:{self.line}: {self.rule} {self.message}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "file": self.location,
            "line": self.line,
            "rule": self.rule,
            "severity": self.severity.value,
            "message": self.message,
        }


@dataclass(frozen=True)
class LintReport:
    """What ``alley lint`` found: every finding, in file then line order."""

    findings: tuple[Finding, ...]
    files: int
    notes: tuple[str, ...] = field(default=())

    @property
    def errors(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.severity is Severity.ERROR)

    @property
    def warnings(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.severity is Severity.WARNING)

    def as_dict(self) -> dict[str, Any]:
        return {
            "files": self.files,
            "errors": len(self.errors),
            "warnings": len(self.warnings),
            "findings": [f.as_dict() for f in self.findings],
        }


SYNTAX_RULE = "syntax"
_IGNORE = re.compile(r"#\s*alley:\s*ignore(?:\[([^\]]*)\])?")
ALL = "*"


def silenced_lines(text: str) -> dict[int, set[str]]:
    """Line → the rule ids its ``# alley: ignore[...]`` comment silences (``*``: all).

    Only real comments count (read with :mod:`tokenize`), not the text of a string."""
    silenced: dict[int, set[str]] = {}
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(text).readline))
    except (tokenize.TokenError, SyntaxError):
        return silenced
    for token in tokens:
        if token.type != tokenize.COMMENT:
            continue
        match = _IGNORE.search(token.string)
        if match is None:
            continue
        ids = match.group(1)
        rules = {ALL} if ids is None else {r.strip() for r in ids.split(",") if r.strip()}
        silenced.setdefault(token.start[0], set()).update(rules)
    return silenced


def lint_source(
    filename: str,
    location: str,
    text: str,
    rules: Sequence[Rule],
    *,
    ignore: Iterable[str] = (),
    model_fields: Mapping[str, Mapping[str, str]] | None = None,
) -> list[Finding]:
    """Every finding of ``rules`` in one file, minus the silenced ones, by line.

    A file that does not parse is one ``syntax`` error finding (``up`` refuses it
    anyway, when it loads the file). ``model_fields``: :attr:`Source.model_fields`."""
    ignored = set(ignore)
    try:
        tree = ast.parse(text, filename=location)
    except SyntaxError as error:
        if SYNTAX_RULE in ignored:
            return []
        message = f"does not compile: {error.msg}"
        return [Finding(location, error.lineno or 1, SYNTAX_RULE, Severity.ERROR, message)]
    source = Source(filename, location, text, tree, model_fields)
    silenced = silenced_lines(text)
    findings: list[Finding] = []
    for rule in rules:
        if rule.id in ignored:
            continue
        for line, message in rule.check(source):
            on_line = silenced.get(line, set())
            if ALL in on_line or rule.id in on_line:
                continue
            findings.append(Finding(location, line, rule.id, rule.severity, message))
    findings.sort(key=lambda f: (f.line, f.rule))
    return findings


def project_ignores(options: Mapping[str, Any]) -> tuple[str, ...]:
    """``[tool.alley] lint_ignore``: rule ids silenced in the whole project.

    :raises ValueError: it is not a list of strings (the caller names where it came from).
    """
    value = options.get("lint_ignore", ())
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"lint_ignore must be a list of rule ids, not {value!r}")
    return tuple(value)


def unique_rules(rules: Iterable[Rule]) -> list[Rule]:
    """The rules in order, one per id: the first plugin to provide an id wins."""
    seen: dict[str, Rule] = {}
    for rule in rules:
        seen.setdefault(rule.id, rule)
    return list(seen.values())
