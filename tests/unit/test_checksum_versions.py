"""Checksums are the same on every Python alley supports (3.11, 3.12, 3.13).

Python 3.12 rewrote the tokenizer (f-strings became several tokens), so a checksum over
tokens could differ between the machine that applied a migration and the one that
checks it, and every record would look like drift. The digests below were computed on
Python 3.11; CI runs this module on 3.11, 3.12 and 3.13 (``nox -s tests``).
"""

from __future__ import annotations

import pytest

from alley.checksum import source_checksum

SOURCES = {
    "fstrings": '''def up(db):
    name = "x"
    db.log.insert_one({"msg": f"hello {name!r:>10} {{literal}} {db.name=}"})
    db.log.insert_one({"msg": f"""multi
line {name}
"""})
    db.log.insert_one({"msg": f"nested {f'{name}'}" + rf"raw {name}\\d"})
''',
    "fstring_formatspec": 'x = f"{3.14159:.{2}f} and {{}}"\n',
    "match": """def up(db):
    match db.name:
        case "prod" | "staging":
            pass
        case _:
            db.x.insert_one({})
""",
    "walrus_types": """def up(db: "Database") -> None:
    if (n := db.x.count_documents({})) > 0:
        items: list[int] = [i for i in range(n)]
""",
    "continuations": "x = (1 +\n     2)\ny = 1 + \\\n    2\n",
    "bytes_and_prefixes": "a = b'x' + rb'y'\nb = u'z'\n",
    "decorators_async": """import functools
@functools.lru_cache
async def up(db):
    async with db as d:
        await d
""",
    "tabs": "def up(db):\n\tif db:\n\t\tpass\n",
    "unicode": 'def up(db):\n    db.x.insert_one({"name": "Zoë ✓"})\n',
    "syntax_error_unclosed": "def up(db:\n    pass\n",
    "syntax_error_indent": "def up(db):\npass\n",
    "empty": "",
}

DIGESTS_ON_PYTHON_3_11 = {
    "fstrings": "v1:696f2e6e644dd8497ecdb05ecefd0f10fa28d2af1a029b364053e68383ea1578",
    "fstring_formatspec": "v1:6465e849b03fe140110bf8a38a1f13db02ac71d578702042f6809e4dcbeeb7e5",
    "match": "v1:6f9ba565f127f3c0f28b6a8dca9bb3bb70418076aae4af3406a6aaa0289723ce",
    "walrus_types": "v1:e94c61a430cccff0320eb30a8081f5c58a0cf9e8b64ea3595cf21955f8691f26",
    "continuations": "v1:0a367114758cefdc4bee30bde49921890d8c70226dc0b2174314714d6618b6ee",
    "bytes_and_prefixes": "v1:ff0faa6432fad22807ae3cee43210000cc388428becde20ae6ddb401b552c556",
    "decorators_async": "v1:b0068cb6b5d53e67c5996d2b2c428548a51c3a4aeac9717428e4c4614bdd4275",
    "tabs": "v1:55cea227bfa7f8359f27a45f627736f9c51b573e1bd70d662125a80376a28f3f",
    "unicode": "v1:e61ce3f07d47cd008ca8adfab6576fa9d744e57610f99656f93438691585cc39",
    "syntax_error_unclosed": "v1:63ca9d129317205d378a7af8ee33dda33da0b03b4450608ca8a0aea2bc215199",
    "syntax_error_indent": "v1:ea9f3edbcd1c4099edba3efea669152ae9364319bf2064d611f9cbd78821deaa",
    "empty": "v1:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
}


@pytest.mark.parametrize("name", sorted(SOURCES))
def test_checksum_is_the_one_computed_on_python_3_11(name: str) -> None:
    assert source_checksum(SOURCES[name]) == DIGESTS_ON_PYTHON_3_11[name]


def test_every_source_has_a_recorded_digest() -> None:
    assert set(SOURCES) == set(DIGESTS_ON_PYTHON_3_11)
