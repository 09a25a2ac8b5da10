"""Checksums of migration sources that ignore comments and formatting.

The checksum is taken over the token stream, not the bytes: comments, blank lines,
spacing inside a line and line continuations do not change it; any change to code,
names, literals or indentation structure does. The result is prefixed with the
algorithm version so a future change can be told apart from drift.
"""

from __future__ import annotations

import hashlib
import io
import tokenize
from collections.abc import Iterable

ALGORITHM = "v1"

_SKIPPED = {tokenize.COMMENT, tokenize.NL, tokenize.ENCODING, tokenize.ENDMARKER}
# Python 3.12 split f-strings into several tokens; joining them back into the source
# slice they cover gives the single STRING token of 3.11, so checksums stay equal.
_FSTRING_START = getattr(tokenize, "FSTRING_START", None)
_FSTRING_END = getattr(tokenize, "FSTRING_END", None)


def _normalised_tokens(source: str) -> list[str]:
    return normalise(tokenize.generate_tokens(io.StringIO(source).readline), source)


def normalise(token_stream: Iterable[tokenize.TokenInfo], source: str) -> list[str]:
    """The token strings that identify ``source``: code only, layout reduced to markers."""
    lines = source.splitlines(keepends=True)
    tokens: list[str] = []
    fstring_depth = 0
    fstring_start: tuple[int, int] = (0, 0)
    for token in token_stream:
        if fstring_depth:
            if token.type == _FSTRING_START:
                fstring_depth += 1
            elif token.type == _FSTRING_END:
                fstring_depth -= 1
                if not fstring_depth:
                    tokens.append(_slice(lines, fstring_start, token.end))
            continue
        if token.type == _FSTRING_START:
            fstring_depth, fstring_start = 1, token.start
        elif token.type == tokenize.INDENT:
            tokens.append("<INDENT>")
        elif token.type == tokenize.DEDENT:
            tokens.append("<DEDENT>")
        elif token.type == tokenize.NEWLINE:
            tokens.append("<NEWLINE>")
        elif token.type not in _SKIPPED:
            tokens.append(token.string)
    return tokens


def _slice(lines: list[str], start: tuple[int, int], end: tuple[int, int]) -> str:
    (start_row, start_col), (end_row, end_col) = start, end
    if start_row == end_row:
        return lines[start_row - 1][start_col:end_col]
    parts = [lines[start_row - 1][start_col:]]
    parts.extend(lines[start_row : end_row - 1])
    parts.append(lines[end_row - 1][:end_col])
    return "".join(parts)


def source_checksum(source: str) -> str:
    """Return the checksum of a migration's source, e.g. ``v1:3f2a…``.

    A source that does not tokenize (a syntax error) falls back to a checksum of its
    bytes, so a broken file still has a stable identity. (Python 3.11's tokenizer
    accepts some sources the compiler refuses, such as tabs and spaces mixed
    inconsistently, which 3.12's raises on: only such a file, which cannot run anyway,
    checksums differently between the two.)
    """
    try:
        material = "\x00".join(_normalised_tokens(source))
    except (tokenize.TokenError, SyntaxError, IndentationError):
        material = "raw\x00" + source
    digest = hashlib.sha256(material.encode("utf-8")).hexdigest()
    return f"{ALGORITHM}:{digest}"
