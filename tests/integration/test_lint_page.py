"""docs/lint.md is this run: its sample folder is built from the page's own files, and
each ``$ alley ...`` block on it shows what the command really prints.

``lint`` gets a URL where nothing listens (it never connects); ``up``'s pre-flight
refusal and ``--no-lint`` run against the real server. The plugin section's rule is
installed for real (a ``*.dist-info`` with the page's entry point, on ``PYTHONPATH``)
and run as a process, as an installed plugin is found.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from conftest import Project, Result

OK, MIGRATION_FAILED, CONFIG = 0, 1, 3
PAGE = Path(__file__).parents[2] / "docs" / "lint.md"
DEMO = "/tmp/demo"
NOWHERE = {"ALLEY_URL": "mongodb://127.0.0.1:1/?serverSelectionTimeoutMS=200"}
SAMPLE = [
    "pyproject.toml",
    "shop/models.py",
    *(
        f"migrations/{name}.py"
        for name in (
            "0001_add_status",
            "0002_import_old",
            "0003_no_way_back",
            "0004_tag_vip",
            "0005_cleanup",
            "0006_unique_email",
            "0007_orders_index",
            "0008_half_written",
        )
    ),
]


def page_file(label: str) -> str:
    """The code block that follows ``label`` (a line such as `` `/tmp/demo/x.py`: ``)."""
    text = PAGE.read_text()
    assert text.count(f"\n{label}:\n\n```") == 1, label
    return text.split(f"\n{label}:\n\n```", 1)[1].split("\n", 1)[1].split("```", 1)[0]


def runs() -> list[tuple[str, str]]:
    """Every ``$ alley ARGS`` block of the page, in order: (ARGS, what it shows)."""
    return re.findall(r"```console\n\$ alley (.*?)\n(.*?)```", PAGE.read_text(), re.S)


def shown(result: Result, project: Project) -> str:
    return result.stdout.replace(str(project.root), DEMO)


def install_page_plugin(site: Path) -> dict[str, str]:
    """The plugin section's module, installed under the entry point the page declares."""
    module = page_file("`alley_update_all.py`")
    declared = PAGE.read_text().split("[project.entry-points.alley]\n", 1)[1].split("\n", 1)[0]
    name, target = (part.strip().strip('"') for part in declared.split("="))
    site.mkdir(parents=True)
    (site / f"{target}.py").write_text(module)
    dist_info = site / "alley_update_all-0.1.0.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: alley-update-all\nVersion: 0.1.0\n"
    )
    (dist_info / "entry_points.txt").write_text(f"[alley]\n{name} = {target}\n")
    return {"PYTHONPATH": str(site), "PYTHONDONTWRITEBYTECODE": "1", **NOWHERE}


def build(project: Project, paths: list[str], label: str = "") -> None:
    """Write the page's files (``label``: the blocks marked ``, silenced``)."""
    for path in paths:
        target = project.root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(page_file(f"`{DEMO}/{path}`{label}"))


def documented() -> list[str]:
    """What the page's ``$ alley`` blocks show, checked to be the expected commands."""
    found = runs()
    assert [args for args, _ in found] == [
        "lint",
        "lint --json",
        "lint",
        "up",
        "up --no-lint",
        "lint",
    ]
    return [output for _, output in found]


def test_docs_lint_page_lint_runs(project: Project, tmp_path: Path) -> None:
    """The sample, ``--json``, the silencing, and the plugin's rule: each lint shown."""
    build(project, SAMPLE)
    sample, as_json, silenced, _, _, plugin = documented()

    # The sample: one finding of each rule (and none in the clean 0001).
    linted = project.alley("lint", env=NOWHERE, url=False)
    assert linted.returncode == CONFIG, linted.output
    assert shown(linted, project) == sample
    rules = {line.split(" ", 2)[1] for line in sample.splitlines()[:-1]}
    assert rules == {
        "pymongo3-removed",
        "missing-down",
        "empty-down",
        "destructive",
        "unique-without-check",
        "index-in-transaction",
        "syntax",
    }
    assert "0001_add_status" not in sample
    assert "$unset removes customers.nickname, which shop.models.Customer declares" in sample
    assert "fax" not in sample

    # --json, shortened on the page where it shows "...".
    linted = project.alley("lint", "--json", env=NOWHERE, url=False)
    assert linted.returncode == CONFIG, linted.output
    head, tail = as_json.split("    ...\n")
    real = shown(linted, project)
    assert real.startswith(head), real
    assert real.endswith(tail), real
    assert real.count('"rule":') == 8
    assert head.count('"rule":') + tail.count('"rule":') == 2

    # Silenced on one line and in the project.
    build(project, ["migrations/0005_cleanup.py", "pyproject.toml"], ", silenced")
    assert "# alley: ignore[destructive]" in (project.root / SAMPLE[6]).read_text()
    linted = project.alley("lint", env=NOWHERE, url=False)
    assert linted.returncode == CONFIG, linted.output
    assert shown(linted, project) == silenced
    assert "empty-down" not in silenced
    assert "0005_cleanup.py:2:" not in silenced

    # A rule of one's own, from an installed plugin (the page's last lint).
    env = install_page_plugin(tmp_path / "site")
    linted = project.alley("lint", env=env, url=False, process=True)
    assert linted.returncode == CONFIG, linted.output
    assert shown(linted, project) == plugin
    assert plugin.count(": update-all update_many({}) rewrites every document") == 2
    without = project.alley("lint", env=NOWHERE, url=False, process=True)
    assert shown(without, project) == silenced
    disabled = project.alley(
        "--disable-plugin", "update_all", "lint", env=env, url=False, process=True
    )
    assert shown(disabled, project) == silenced


def test_docs_lint_page_up_preflight(project: Project, mongo_db: Any) -> None:
    """``up`` refuses 0002 before anything runs; ``--no-lint`` and ``lint = false`` run
    0001 and then fail on 0002's ``save``, as the page shows."""
    build(project, SAMPLE[2:4])
    build(project, ["pyproject.toml"], ", silenced")
    _, _, _, refused, no_lint, _ = documented()
    mongo_db.customers.insert_one({"_id": 1, "email": "ada@example.com"})

    up = project.alley("up")

    assert up.returncode == CONFIG, up.output
    assert up.stderr.replace(str(project.root), DEMO) == refused
    assert "Traceback" not in up.output
    assert mongo_db.customers.find_one({"_id": 1}) == {"_id": 1, "email": "ada@example.com"}
    assert mongo_db.db_migrations.count_documents({}) == 0

    def ran_without_lint(result: Result) -> None:
        assert result.returncode == MIGRATION_FAILED, result.output
        last = result.stderr.splitlines()[-1].replace(str(project.root), DEMO)
        assert no_lint == f"...\n{last}\n", last
        assert mongo_db.customers.find_one({"_id": 1})["status"] == "active"
        assert [r["filename"] for r in mongo_db.db_migrations.find()] == ["0001_add_status.py"]

    ran_without_lint(project.alley("up", "--no-lint"))

    # lint = false in [tool.alley] does the same, from 0001 pending again.
    assert project.alley("down").returncode == OK
    assert "status" not in mongo_db.customers.find_one({"_id": 1})
    pyproject = project.root / "pyproject.toml"
    pyproject.write_text(pyproject.read_text() + "lint = false\n")
    ran_without_lint(project.alley("up"))
