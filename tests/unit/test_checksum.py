"""Unit tests of alley.checksum: a checksum of source that ignores comments and formatting."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from alley.checksum import ALGORITHM, source_checksum
from alley.model import Migration

BASE = '''"""Add users."""


def up(db):
    db.users.insert_one({"name": "admin", "roles": ["a", "b"]})
    if db.name == "prod":
        db.users.create_index("name")


def down(db):
    db.users.delete_many({})
'''

# Each is BASE with only comments / blank lines / spacing / continuations changed.
SAME_AS_BASE = {
    "comments": '''"""Add users."""
# a comment on its own line


def up(db):  # a trailing comment
    # an indented comment
    db.users.insert_one({"name": "admin", "roles": ["a", "b"]})
    if db.name == "prod":  # only in production
        db.users.create_index("name")
# a comment at column 0 inside the block


def down(db):
    db.users.delete_many({})
# the end
''',
    "blank lines": '''"""Add users."""
def up(db):

    db.users.insert_one({"name": "admin", "roles": ["a", "b"]})


    if db.name == "prod":
        db.users.create_index("name")
def down(db):
    db.users.delete_many({})



''',
    "spacing inside lines": '''"""Add users."""


def up( db ):
    db.users.insert_one( { "name" :"admin","roles":[ "a" ,"b" ] } )
    if db.name=="prod" :
        db.users.create_index(  "name")


def down(db) :
    db.users.delete_many( {} )
''',
    "trailing whitespace": BASE.replace("\n", "   \n").replace("})   \n", "})\t\n"),
    "indentation width": BASE.replace("        ", "\t\t").replace("    ", "\t"),
    "windows line endings": BASE.replace("\n", "\r\n"),
    "no final newline": BASE.rstrip("\n"),
}


@pytest.mark.parametrize("variant", sorted(SAME_AS_BASE))
def test_formatting_does_not_change_the_checksum(variant: str) -> None:
    assert SAME_AS_BASE[variant] != BASE
    assert source_checksum(SAME_AS_BASE[variant]) == source_checksum(BASE)


@pytest.mark.parametrize(
    ("one", "other"),
    [
        ("x = (1 +\n     2)\n", "x = (1 + 2)\n"),
        ("x = 1 + \\\n    2\n", "x = 1 + 2\n"),
        ("call(a,\n     b,\n     c)\n", "call(a, b, c)\n"),
        ("if a and \\\n        b:\n    pass\n", "if a and b:\n    pass\n"),
        ("d = {\n    'a': 1,  # one\n\n    'b': 2,\n}\n", "d = {'a': 1, 'b': 2,}\n"),
    ],
)
def test_line_continuations_do_not_change_the_checksum(one: str, other: str) -> None:
    assert source_checksum(one) == source_checksum(other)


CHANGED_FROM_BASE = {
    "string literal": BASE.replace('"admin"', '"root"'),
    "number literal": BASE.replace("delete_many({})", "delete_many({'n': 1})"),
    "docstring": BASE.replace("Add users.", "Add the users."),
    "name": BASE.replace("create_index", "create_indexes"),
    "operator": BASE.replace("==", "!="),
    "statement moved out of the block": BASE.replace(
        '        db.users.create_index("name")', '    db.users.create_index("name")'
    ),
    "statement added": BASE.replace(
        "    db.users.delete_many({})", "    db.users.delete_many({})\n    db.users.drop()"
    ),
    "string quote kind": BASE.replace('"prod"', "'prod'"),
}


@pytest.mark.parametrize("change", sorted(CHANGED_FROM_BASE))
def test_code_changes_change_the_checksum(change: str) -> None:
    assert CHANGED_FROM_BASE[change] != BASE
    assert source_checksum(CHANGED_FROM_BASE[change]) != source_checksum(BASE)


def test_moving_a_statement_out_of_a_loop_changes_the_checksum() -> None:
    inside = "for x in xs:\n    a(x)\n    b(x)\n"
    outside = "for x in xs:\n    a(x)\nb(x)\n"
    assert source_checksum(inside) != source_checksum(outside)


def test_every_changed_variant_has_its_own_checksum() -> None:
    checksums = {source_checksum(s) for s in CHANGED_FROM_BASE.values()}
    assert len(checksums) == len(CHANGED_FROM_BASE)


FSTRINGS = [
    'x = f"{a}"\n',
    'x = f"{a!r:>{width}}"\n',
    "x = f\"{ {'k': v}['k'] }\"\n",
    "x = f\"{f'{a}-{b}'}\" + f'{c}'\n",
    'x = f"""multi\n{a}\nline"""\n',
    'x = rf"\\d{n}{{literal}}"\n',
]


@pytest.mark.parametrize("source", FSTRINGS)
def test_fstrings_with_nested_expressions_checksum_stably(source: str) -> None:
    first = source_checksum(source)
    assert first == source_checksum(source)
    assert first == source_checksum(source.replace("x = ", "x  =  ") + "# comment\n")
    assert first != source_checksum(source.replace("x = ", "y = "))


def test_fstrings_have_distinct_checksums() -> None:
    assert len({source_checksum(s) for s in FSTRINGS}) == len(FSTRINGS)


def test_fstring_content_is_part_of_the_checksum() -> None:
    assert source_checksum('x = f"{a}-{b}"\n') != source_checksum('x = f"{a}+{b}"\n')
    assert source_checksum('x = f"{a}"\n') != source_checksum('x = f"{b}"\n')
    assert source_checksum('x = f"{a}"\n') != source_checksum('x = "{a}"\n')


def test_fstring_followed_by_code_keeps_the_code() -> None:
    assert source_checksum('x = f"{a}"; y = 1\n') != source_checksum('x = f"{a}"; y = 2\n')


def test_checksum_starts_with_the_algorithm_version() -> None:
    checksum = source_checksum(BASE)
    assert ALGORITHM == "v1"
    assert re.fullmatch(r"v1:[0-9a-f]{64}", checksum)


def test_golden_value() -> None:
    # Pinned: if this changes, every stored checksum reads as drift. Bump ALGORITHM.
    source = "def up(db):\n    db.users.insert_one({'name': 'x'})\n"
    assert source_checksum(source) == (
        "v1:778c7728b44cfef34bee6cd6a6d935ae1d5076311086f7652259326a5da7750a"
    )


@pytest.mark.parametrize(
    "broken",
    [
        'x = """never closed\n',
        "call(1,\n",
        "if x:\n        a\n    b\n",
        "def up(db) pass\n",
        "x = 'unterminated\n",
    ],
)
def test_a_source_with_a_syntax_error_gets_a_stable_checksum(broken: str) -> None:
    checksum = source_checksum(broken)
    assert re.fullmatch(r"v1:[0-9a-f]{64}", checksum)
    assert checksum == source_checksum(broken)
    assert checksum != source_checksum(broken + "x")


def test_broken_sources_differ_from_each_other() -> None:
    assert source_checksum('x = """one\n') != source_checksum('x = """two\n')


def test_migration_checksum_is_the_source_checksum() -> None:
    m = Migration(1, "a", "0001_a.py", BASE, "/p/migrations/0001_a.py")
    assert m.checksum == source_checksum(BASE)


@given(
    st.lists(
        st.tuples(
            st.sampled_from(["a", "b", "db", "x1"]),
            st.integers(min_value=0, max_value=999),
            st.text(alphabet="abc #", max_size=10),
        ),
        min_size=1,
        max_size=8,
    ),
    st.integers(min_value=0, max_value=3),
    st.integers(min_value=0, max_value=3),
)
def test_spacing_and_comments_never_matter(lines, spaces: int, blank: int) -> None:
    plain = "".join(f"{n} = {v}\n" for n, v, _ in lines)
    noisy = "".join(
        f"{n}{' ' * spaces}={' ' * spaces}{v}{' ' * spaces}  # {c}\n" + "\n" * blank
        for n, v, c in lines
    )
    assert source_checksum(plain) == source_checksum(noisy)


def test_python_3_12_fstring_tokens_normalise_like_the_3_11_string_token(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Python 3.12 split f-strings into FSTRING_START/MIDDLE/END tokens (PEP 701).

    The 3.12 token stream of ``x = f"a{b!r:>3}c"`` is written out by hand (with
    stand-in token numbers on 3.11, the real ones on 3.12+): the checksum code must join
    it back into the single STRING token that 3.11 produces, so a file's checksum does
    not change with the interpreter.
    """
    import tokenize

    from alley import checksum

    source = 'x = f"a{b!r:>3}c"\n'
    fstring_start = getattr(tokenize, "FSTRING_START", 1001)
    fstring_middle = getattr(tokenize, "FSTRING_MIDDLE", 1002)
    fstring_end = getattr(tokenize, "FSTRING_END", 1003)
    monkeypatch.setattr(checksum, "_FSTRING_START", fstring_start)
    monkeypatch.setattr(checksum, "_FSTRING_END", fstring_end)

    def tok(kind: int, text: str, start: int, end: int) -> tokenize.TokenInfo:
        return tokenize.TokenInfo(kind, text, (1, start), (1, end), source)

    python_3_12_stream = [
        tok(tokenize.NAME, "x", 0, 1),
        tok(tokenize.OP, "=", 2, 3),
        tok(fstring_start, 'f"', 4, 6),
        tok(fstring_middle, "a", 6, 7),
        tok(tokenize.OP, "{", 7, 8),
        tok(tokenize.NAME, "b", 8, 9),
        tok(tokenize.OP, "!", 9, 10),
        tok(tokenize.NAME, "r", 10, 11),
        tok(tokenize.OP, ":", 11, 12),
        tok(fstring_middle, ">3", 12, 14),
        tok(tokenize.OP, "}", 14, 15),
        tok(fstring_middle, "c", 15, 16),
        tok(fstring_end, '"', 16, 17),
        tok(tokenize.NEWLINE, "\n", 17, 18),
    ]

    joined = checksum.normalise(python_3_12_stream, source)

    assert joined == checksum._normalised_tokens(source)  # what this Python's tokenizer gives
    assert joined == ["x", "=", 'f"a{b!r:>3}c"', "<NEWLINE>"]
