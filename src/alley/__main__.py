"""``python -m alley``: the same as the ``alley`` command, fast ``--help`` included."""

from alley.entry import run

run()
