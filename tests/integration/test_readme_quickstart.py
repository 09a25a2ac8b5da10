"""The README's quick start, copy-pasted as written, in a fresh virtual environment.

The block under "## Quick start" runs in bash from a copy of the repository, with a
new venv first on PATH (so its ``pip install -e .`` is the real set-up, dependencies
from the package index included). Each ``alley`` line must print what its comment says.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MARKER = "@@@ line "


def quick_start_block() -> list[str]:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("\n## Quick start\n", 1)[1].split("\n## ", 1)[0]
    match = re.search(r"```sh\n(.*?)```", section, re.DOTALL)
    assert match, "the quick start has a ```sh block"
    return [line for line in match.group(1).splitlines() if line.strip()]


def copy_of_the_repository(target: Path) -> Path:
    clone = target / "alley"
    clone.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        if (ROOT / name).exists():
            shutil.copy2(ROOT / name, clone / name)
    shutil.copytree(
        ROOT / "src", clone / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info")
    )
    (clone / ".git").mkdir()  # a clone's root, as project-root detection sees it
    return clone


def expected_output(line: str) -> re.Pattern[str] | None:
    """The comment of an ``alley`` line, as a pattern: ``...`` stands for anything and
    a run of spaces for any (columns are aligned to the longest name)."""
    command, _, comment = line.partition("#")
    if not command.startswith("alley ") or not comment.strip():
        return None
    parts = [r"\s+".join(map(re.escape, part.split())) for part in comment.strip().split("...")]
    return re.compile(".*".join(parts))


def test_readme_quick_start_as_written(tmp_path: Path) -> None:
    lines = quick_start_block()
    assert lines[0] == "pip install -e .", "the quick start starts with the set-up"
    clone = copy_of_the_repository(tmp_path)
    environment = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(environment)
    state_file = tmp_path / "background-server.json"
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("ALLEY_URL", "MONGODB_URI", "ALLEY_DATABASE", "ALLEY_PATH"))
        and key not in ("VIRTUAL_ENV", "PYTHONPATH")
    }
    env.update(
        PATH=f"{environment / 'bin'}{os.pathsep}{env.get('PATH', '')}",
        ALLEY_TESTING_STATE_FILE=str(state_file),
        PIP_DISABLE_PIP_VERSION_CHECK="1",
    )
    script = "set -euo pipefail\n" + "".join(
        f"echo '{MARKER}{number}'\n{line}\n" for number, line in enumerate(lines)
    )
    try:
        result = subprocess.run(
            ["bash", "-c", script],
            check=False,
            cwd=clone,
            env=env,
            capture_output=True,
            text=True,
            timeout=900,
        )
    finally:
        if state_file.exists():  # the block failed before its last line: stop the server
            subprocess.run(
                [environment / "bin" / "python", "-m", "alley.testing", "--stop"],
                env=env,
                capture_output=True,
                check=False,
            )

    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    outputs = dict.fromkeys(range(len(lines)), "")
    for chunk in result.stdout.split(MARKER)[1:]:
        number, _, output = chunk.partition("\n")
        outputs[int(number)] = output
    for number, line in enumerate(lines):
        pattern = expected_output(line)
        if pattern is not None:
            assert pattern.search(outputs[number]), f"{line!r} printed {outputs[number]!r}"
    assert (clone / "demo" / "migrations" / "0001_add_users.py").is_file()
    assert not state_file.exists(), "the last line stops the background server"
    assert "Traceback" not in result.stderr


def test_every_alley_line_of_the_quick_start_says_what_it_prints() -> None:
    lines = [line for line in quick_start_block() if line.startswith("alley ")]
    assert lines
    assert all(expected_output(line) is not None for line in lines)
