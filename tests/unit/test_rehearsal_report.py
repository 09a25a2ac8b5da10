"""The pure parts of ``alley test`` (:mod:`alley.rehearsal`): snapshot differences and
their wording, verdicts, exit codes, the throwaway database's name, the lines printed,
the settings of ``--server``'s other server."""

from __future__ import annotations

import dataclasses
import io

import pytest

from alley import render
from alley.errors import ConfigError
from alley.rehearsal import (
    CollectionShot,
    RehearsalReport,
    Rehearsed,
    Snapshot,
    differences,
    is_throwaway,
    server_settings,
    throwaway_name,
)
from alley.settings import Settings


def shot(documents: dict[bytes, str], indexes: dict[str, str] | None = None) -> CollectionShot:
    digest = "|".join(f"{k!r}:{v}" for k, v in sorted(documents.items()))
    return CollectionShot(digest, documents, indexes or {"_id_": "id"})


USERS = shot({b"1": "a", b"2": "b", b"3": "c"}, {"_id_": "id", "email_1": "email"})


def test_the_same_snapshot_has_no_differences() -> None:
    assert differences(Snapshot({"users": USERS}), Snapshot({"users": USERS})) == ()


def test_changed_added_and_removed_documents_are_counted() -> None:
    after = shot({b"1": "a", b"2": "B", b"4": "d"}, {"_id_": "id", "email_1": "email"})
    # 2 changed, 3 removed, 4 added: three documents differ.
    assert differences(Snapshot({"users": USERS}), Snapshot({"users": after})) == (
        "users changed (3 documents)",
    )


def test_one_document_is_singular() -> None:
    after = shot({b"1": "a", b"2": "b", b"3": "C"}, {"_id_": "id", "email_1": "email"})
    assert differences(Snapshot({"users": USERS}), Snapshot({"users": after})) == (
        "users changed (1 document)",
    )


def test_indexes_missing_added_and_changed_name_their_collection() -> None:
    after = shot(
        {b"1": "a", b"2": "b", b"3": "c"},
        {"_id_": "id", "name_1": "name", "email_1": "email unique"},
    )
    before = shot({b"1": "a", b"2": "b", b"3": "c"}, {"_id_": "id", "email_1": "email", "x": "x"})
    assert differences(Snapshot({"users": before}), Snapshot({"users": after})) == (
        "index users.email_1 changed",
        "index users.name_1 added",
        "index users.x missing",
    )


def test_collections_added_and_missing() -> None:
    assert differences(Snapshot({"users": USERS}), Snapshot({"orders": shot({})})) == (
        "collection orders added",
        "collection users missing",
    )


def test_verdicts_and_exit_codes() -> None:
    ok = Rehearsed(3, "0003_a.py", (0.1, 0.1, 0.1))
    gone = Rehearsed(4, "0004_b.py", (0.1, 0.1, 0.1), irreversible=("users changed (1 document)",))
    again = Rehearsed(
        5, "0005_c.py", (0.1, 0.1, 0.1), not_repeatable=("events changed (2 documents)",)
    )
    both = Rehearsed(6, "0006_d.py", (0.1, 0.1, 0.1), ("x",), ("y",))
    failed = Rehearsed(7, "0007_e.py", (0.1,), failed_phase="down", error="ValueError: no")
    twice = Rehearsed(9, "0009_g.py", (0.1,) * 4, not_idempotent=("orders changed (1 document)",))
    skipped = Rehearsed(8, "0008_f.py", ran=False)
    assert [r.result for r in (ok, gone, again, both, failed, skipped, twice)] == [
        "ok",
        "irreversible",
        "not repeatable",
        "irreversible, not repeatable",
        "failed",
        "not run",
        "not idempotent",
    ]

    def report(*items: Rehearsed) -> RehearsalReport:
        return RehearsalReport("app", "app_alley_test_abcdef", False, 100, {}, items)

    assert report(ok).exit_code == 0
    assert report(ok, gone).exit_code == 6
    assert report(again).exit_code == 6
    assert report(ok, twice).exit_code == 6
    assert report(gone, failed, skipped).exit_code == 1  # a raise outranks a finding
    assert RehearsalReport("app", None, False, 100).exit_code == 0  # nothing pending


def test_lines() -> None:
    assert (
        render.rehearsal_line(Rehearsed(3, "0003_x.py", (0.123, 0.05, 0.11)))
        == "0003_x.py  up 0.12s  down 0.05s  up 0.11s  ok"
    )
    assert render.rehearsal_line(
        Rehearsed(
            4,
            "0004_y.py",
            (0.1, 0.05, 0.1),
            irreversible=("users changed (3 documents)", "index users.email_1 missing"),
            not_repeatable=("events changed (1 document)",),
        )
    ) == (
        "0004_y.py  up 0.10s  down 0.05s  up 0.10s  IRREVERSIBLE: down left users changed "
        "(3 documents), index users.email_1 missing; NOT REPEATABLE: up again left events "
        "changed (1 document)"
    )
    assert (
        render.rehearsal_line(Rehearsed(5, "0005_z.py", (0.2,), failed_phase="down", error="E: x"))
        == "0005_z.py  up 0.20s  FAILED (down): E: x"
    )
    assert render.rehearsal_line(
        Rehearsed(
            7, "0007_v.py", (0.1, 0.1, 0.1, 0.1), not_idempotent=("orders changed (4 documents)",)
        )
    ) == (
        "0007_v.py  up 0.10s  down 0.10s  up 0.10s  up over itself 0.10s  NOT IDEMPOTENT: "
        "up over its own result left orders changed (4 documents)"
    )
    assert (
        render.rehearsal_line(Rehearsed(6, "0006_w.py", ran=False))
        == "0006_w.py  not run (a migration before it failed)"
    )


def test_summary() -> None:
    out = io.StringIO()
    items = (
        Rehearsed(3, "a", (0.1, 0.1, 0.1)),
        Rehearsed(4, "b", (0.1, 0.1, 0.1), irreversible=("x",)),
    )
    render.rehearsal_summary(
        RehearsalReport("app", "app_alley_test_abcdef", True, 5, {"users": 5, "logs": 0}, items),
        out,
    )
    assert out.getvalue() == (
        "2 rehearsed: 1 ok, 1 irreversible (on a copy of app: 2 collections, 5 documents, "
        "--sample 5)\nkept the throwaway database app_alley_test_abcdef\n"
    )
    out = io.StringIO()
    render.rehearsal_summary(RehearsalReport("app", None, False, 100), out)
    assert out.getvalue() == "nothing to do\n"


def test_throwaway_names() -> None:
    assert throwaway_name("app", token="0a1b2c") == "app_alley_test_0a1b2c"
    assert is_throwaway("app_alley_test_0a1b2c")
    assert not is_throwaway("app_alley_test")
    assert not is_throwaway("app_alley_test_0a1b2c_x")
    assert not is_throwaway("app_alley")
    # Within MongoDB's 63 bytes, cut at a character (é is 2 bytes).
    long = throwaway_name("é" * 40, token="0a1b2c")
    assert len(long.encode()) <= 63
    assert long.endswith("_alley_test_0a1b2c")
    assert is_throwaway(long)
    # A name that exists is not taken.
    taken = throwaway_name("app", ["app_alley_test_0a1b2c"], token="0a1b2c")
    assert taken != "app_alley_test_0a1b2c"
    assert is_throwaway(taken)


def test_summary_on_another_server_names_it() -> None:
    items = (Rehearsed(3, "a", (0.1, 0.1, 0.1)),)
    report = RehearsalReport(
        "app",
        "app_alley_test_abcdef",
        False,
        5,
        {"users": 5},
        items,
        server="127.0.0.1:27018",
        other_server=True,
    )
    out = io.StringIO()
    render.rehearsal_summary(report, out)
    assert out.getvalue() == (
        "1 rehearsed: 1 ok (on a copy of app made on 127.0.0.1:27018: 1 collection, "
        "5 documents, --sample 5)\n"
        "dropped the throwaway database app_alley_test_abcdef on 127.0.0.1:27018\n"
    )
    data = report.as_dict()
    assert (data["server"], data["other_server"]) == ("127.0.0.1:27018", True)
    # The same server is not named in the text (the command names it), only in JSON.
    same = dataclasses.replace(report, other_server=False)
    out = io.StringIO()
    render.rehearsal_summary(same, out)
    assert " on 127.0.0.1" not in out.getvalue()
    assert same.as_dict()["server"] == "127.0.0.1:27018"


def test_server_settings_carry_over_nothing_of_the_real_connection() -> None:
    real = Settings(
        url="mongodb://app:prod-secret@db.example.com:27017/shop?authSource=admin",
        username="app",
        password="prod-secret",
        database="shop",
        timeout=7.0,
        origins={"url": "env:ALLEY_URL", "password": "cli", "timeout": "cli"},
    )
    other = server_settings(real, "mongodb://127.0.0.1:27018/")
    target = other.connection()
    assert (target.host, target.port, target.where) == ("127.0.0.1", 27018, "127.0.0.1:27018")
    assert (target.username, target.password, target.database, target.auth_source) == (
        None,
        None,
        None,
        None,
    )
    assert other.timeout == 7.0  # not a connection setting: kept
    with_user = server_settings(real, "mongodb://ops:s3cret@127.0.0.1:27018/?authSource=admin")
    assert with_user.connection().username == "ops"
    assert with_user.redacted_target() == "127.0.0.1:27018"


@pytest.mark.parametrize(
    "url", ["mongodb://ops:s3cret@127.0.0.1:port/", "ops:s3cret@127.0.0.1", ""]
)
def test_a_malformed_server_url_is_a_config_error_without_its_password(url: str) -> None:
    with pytest.raises(ConfigError) as raised:
        server_settings(Settings(), url)
    assert raised.value.exit_code == 3
    assert str(raised.value).startswith("--server: invalid URL")
    assert "s3cret" not in str(raised.value)


def test_beyond_db_finds_the_client_and_clients_of_its_own() -> None:
    from alley.model import Direction, Migration, MigrationStatus, Plan, State
    from alley.rehearsal import beyond_db

    source = (
        "from pymongo import MongoClient\n\n\n"
        "def up(db, step):\n"
        "    other = MongoClient('mongodb://elsewhere')\n"
        "    step.db.client.admin.command('ping')\n"
        "    db.users.update_many({}, {'$set': {'client': 1}})\n\n\n"
        "def down(db):\n"
        "    pass\n"
    )
    migration = Migration(1, "x", "0001_x.py", source, "m/0001_x.py")
    plan = Plan(Direction.UP, (MigrationStatus(1, "0001_x.py", State.PENDING, migration, None),))
    assert [n.split(" reaches")[0] for n in beyond_db(plan)] == [
        "m/0001_x.py:5: MongoClient()",
        "m/0001_x.py:6: db.client",
    ]
