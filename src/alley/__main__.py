"""``python -m alley``: the same as the ``alley`` command."""

from alley.cli import run

run()
