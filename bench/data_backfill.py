# ruff: noqa: RUF001, PLR0915
"""Backfill benchmark: alley's ``step.backfill`` against hand-written loops and mongomig.

    python bench/data_backfill.py                 # N = 100,000, and 1,000,000 for the
                                                  # tools of --big-tools (see the report)
    python bench/data_backfill.py --quick         # N = 10,000, and 100,000
    python bench/data_backfill.py --n 20000 --big-n 200000 --resume-n 5000

A backfill sets a computed field (``total = a + b``) and increments a counter ``n`` on N
small documents ``{_id: int, a, b, n: 0}``, each tool in its own subprocess, the tools
interleaved (round-robin, the order rotated each repeat). Measures: documents/second
(wall clock of the process, server round trips included), the process's peak RSS
(``os.wait4``'s ``ru_maxrss``), and for the checkpointing tools the time of the run that
follows a ``kill -9`` at half (half detected by polling the count of done documents),
with a check that every document's counter is exactly 1.

Writes a section of ``docs/benchmarks.md`` (between the ``backfill`` markers, which
``bench/run.py`` keeps) and ``docs/benchmarks-backfill.png``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from peers import CACHE_DIR
from run import ENV, ensure_plotting

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
WORKER = Path(__file__).resolve().parent / "backfill_worker.py"
START = "<!-- backfill:start -->"
END = "<!-- backfill:end -->"
MONGOMIG = "mongomig==0.4.*"
WHERE = {"total": {"$exists": False}}
TIMEOUT = 3600.0

TOOLS = {
    "alley set=/update=": "alley `step.backfill(update=…)` server-side, one `update_many` per "
    "`_id` range",
    "alley transform=": "alley `step.backfill(transform=…)`, one `bulk_write` per batch",
    "naive update_one": "one `update_one` per document (one cursor)",
    "hand-written bulk_write": "one `bulk_write` of `UpdateOne` per batch (one cursor)",
    "update_many (floor)": "one server-side `update_many` over the collection",
    "mongomig backfill": "mongomig 0.4 `ctx.ops.backfill` (one `update_many` per batch of ids)",
}
MONGOMIG_NO_LOCK = """import sys

import mongomig.migrations.lock as lock

lock.MigrationLock.try_acquire = lambda self: True
lock.MigrationLock.refresh = lambda self: True
lock.MigrationLock.release = lambda self: None
from mongomig.cli.app import main

sys.argv = ["mongomig", *sys.argv[1:]]
main()
"""
RESUMABLE = ("alley set=/update=", "alley transform=", "mongomig backfill")


def log(line: str) -> None:
    print(f"bench-backfill: {line}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- set-up


def server_change(pipeline: bool) -> str:
    """The server-side change, as Python source for the alley migration."""
    if pipeline:
        return 'set={"total": {"$add": ["$a", "$b"]}, "n": {"$add": ["$n", 1]}}'
    return 'update={"$set": {"total": -1}, "$inc": {"n": 1}}'


def alley_project(root: Path, kind: str, batch_size: int, pipeline: bool, guard: str) -> None:
    folder = root / "migrations"
    folder.mkdir(parents=True, exist_ok=True)
    where = WHERE
    if kind == "transform":
        how = 'transform=lambda d: {"$set": {"total": d["a"] + d["b"]}, "$inc": {"n": 1}}'
        if guard == "id":
            # Each update's filter is then {_id} alone, as in the hand-written loops; on a
            # fresh collection ``where`` selects every document anyway.
            where = {}
    else:
        how = server_change(pipeline)
    (folder / "0001_backfill.py").write_text(
        "def up(db, step):\n"
        f'    step.backfill("items", where={where!r}, {how}, batch_size={batch_size})\n\n\n'
        "def down(db, step):\n"
        '    db.items.update_many({}, {"$unset": {"total": ""}})\n'
    )


def mongomig_project(root: Path, batch_size: int, pipeline: bool) -> None:
    (root / "migrations" / "versions").mkdir(parents=True, exist_ok=True)
    (root / "mongomig.yaml").write_text(
        "database:\n  uri: ${MONGODB_URI}\n  name: ${MONGODB_DATABASE}\n"
        "migrations:\n  directory: migrations\n"
        f"execution:\n  batch_size: {batch_size}\n  confirm: never\n"
        # after a kill -9 the next run waits for the dead run's lock: alley's lease is
        # 30 s by default, mongomig's lock_ttl_seconds 300; both at 30 s here
        "  lock_ttl_seconds: 30\n"
    )
    (root / "migrations" / "env.py").write_text("")
    update = (
        '[{"$set": {"total": {"$add": ["$a", "$b"]}, "n": {"$add": ["$n", 1]}}}]'
        if pipeline
        else '{"$set": {"total": -1}, "$inc": {"n": 1}}'
    )
    (root / "migrations" / "versions" / "0001_backfill.py").write_text(
        '"""backfill"""\n\nrevision = "b0000000001"\ndown_revision = None\n'
        "branch_labels = None\ndepends_on = None\nreversible = True\nmongomig_format = 1\n\n\n"
        "def upgrade(ctx):\n"
        f'    ctx.ops.backfill("items", {WHERE!r}, {update}, batch_size={batch_size})\n\n\n'
        "def downgrade(ctx):\n    pass\n"
    )


def install_mongomig(cache: Path) -> tuple[Path | None, str]:
    """mongomig 0.4 from the package index into its own venv: (its script, version or why not)."""
    venv = cache / "mongomig"
    exe = venv / "bin" / "mongomig"
    try:
        if not (venv / ".bench-installed").exists() or not exe.exists():
            log(f"installing {MONGOMIG} into {venv}")
            subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
            subprocess.run(
                [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", MONGOMIG],
                check=True,
                capture_output=True,
            )
            (venv / ".bench-installed").write_text(MONGOMIG)
        version = subprocess.run(
            [str(exe), "--version"], capture_output=True, text=True, check=True
        ).stdout.strip()
        return exe, version
    except Exception as error:
        return None, f"install failed: {error}"


def seed(client: Any, db: str, n: int) -> None:
    client.drop_database(db)
    items = client[db]["items"]
    chunk = 10_000
    for start in range(0, n, chunk):
        items.insert_many(
            [{"_id": i, "a": i, "b": 2 * i, "n": 0} for i in range(start, min(n, start + chunk))],
            ordered=False,
        )


def check(client: Any, db: str, n: int) -> None:
    """Every document done exactly once (counter 1), none left."""
    items = client[db]["items"]
    left = items.count_documents(WHERE)
    twice = items.count_documents({"n": {"$ne": 1}})
    if left or twice:
        raise RuntimeError(f"{left} documents left, {twice} with a counter other than 1 (of {n})")


# --------------------------------------------------------------------------- measuring


# ``ru_maxrss`` survives ``exec``: a child forked from this (large) process starts with
# its high-water mark. So a small launcher (``python -I -S``, a few MiB) forks the tool
# and writes the tool's own ``wait4`` usage to the pipe whose fd is its first argument.
LAUNCHER = """import os, sys
fd = int(sys.argv[1])
pid = os.fork()
if pid == 0:
    os.close(fd)
    os.execvp(sys.argv[2], sys.argv[2:])
_, status, usage = os.wait4(pid, 0)
os.write(fd, str(usage.ru_maxrss).encode())
sys.exit(os.waitstatus_to_exitcode(status) & 255)
"""


def run_measured(argv: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, int, str]:
    """Wall seconds, peak RSS (KiB, of the tool's process alone) and output."""
    read, write = os.pipe()
    with tempfile.TemporaryFile() as out:
        start = time.perf_counter()
        proc = subprocess.Popen(
            [sys.executable, "-I", "-S", "-c", LAUNCHER, str(write), *argv],
            cwd=cwd,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            pass_fds=(write,),
        )
        os.close(write)
        proc.wait()
        seconds = time.perf_counter() - start
        with os.fdopen(read, "rb") as pipe:
            rss = int(pipe.read() or 0)
        out.seek(0)
        text = out.read().decode(errors="replace")
    if proc.returncode != 0:
        tail = (text.strip().splitlines() or ["no output"])[-1]
        raise RuntimeError(f"exit {proc.returncode}: {tail[:160]}")
    return seconds, rss, text


class Bench:
    def __init__(self, args: argparse.Namespace, server: Any, client: Any, tmp: Path) -> None:
        self.args, self.server, self.client, self.tmp = args, server, client, tmp
        self.pipeline = pipeline_updates(client)
        exe = Path(sys.executable).parent / "alley"
        self.alley = str(exe) if exe.exists() else shutil.which("alley") or "alley"
        self.mongomig, self.mongomig_version = install_mongomig(args.cache)
        self.runs = 0

    def command(
        self, tool: str, db: str, guard: str | None = None
    ) -> tuple[list[str], Path, dict[str, str]]:
        """A fresh project for one run of ``tool`` on database ``db``; ``guard``: the
        filter of per-document updates (``id`` or ``where``; default ``--guard``)."""
        guard = guard or self.args.guard
        self.runs += 1
        root = self.tmp / f"run{self.runs}"
        root.mkdir()
        uri = self.server.uri_for_database(db)
        size = str(self.args.batch_size)
        if tool.startswith("alley"):
            kind = "transform" if "transform" in tool else "server"
            alley_project(root, kind, *self._opts(), guard)
            return [self.alley, "--url", uri, str(root), "up"], root, ENV
        if tool == "mongomig backfill":
            if self.mongomig is None:
                raise RuntimeError(self.mongomig_version)
            mongomig_project(root, *self._opts())
            env = {**ENV, "MONGODB_URI": self.server.uri, "MONGODB_DATABASE": db}
            if self.pipeline:
                return [str(self.mongomig), "upgrade"], root, env
            # Its lock is taken and renewed with pipeline updates, which this server
            # refuses: run its own CLI with the lock's three methods made no-ops.
            (root / "mongomig_nolock.py").write_text(MONGOMIG_NO_LOCK)
            python = str(self.mongomig.parent / "python")
            return [python, str(root / "mongomig_nolock.py"), "upgrade"], root, env
        kind = {"naive update_one": "naive", "hand-written bulk_write": "bulk"}.get(
            tool, "update_many"
        )
        pipe = "1" if self.pipeline else "0"
        return [sys.executable, str(WORKER), kind, uri, db, size, pipe, guard], root, ENV

    def _opts(self) -> tuple[int, bool]:
        return self.args.batch_size, self.pipeline

    def once(self, tool: str, n: int) -> dict[str, float]:
        db = "bench_backfill"
        seed(self.client, db, n)
        argv, cwd, env = self.command(tool, db)
        seconds, rss, _ = run_measured(argv, cwd, env)
        check(self.client, db, n)
        self.client.drop_database(db)
        return {"s": seconds, "rss_kib": rss, "docs_per_s": n / seconds}

    def resume(self, tool: str, n: int) -> dict[str, Any]:
        """kill -9 at half (polled), then time the next run; check counters are all 1
        (so every per-document update keeps ``where``: the replayed batch is skipped)."""
        db = "bench_backfill_resume"
        seed(self.client, db, n)
        argv, cwd, env = self.command(tool, db, "where")
        items = self.client[db]["items"]
        proc = subprocess.Popen(
            argv, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT
        )
        done = 0
        while proc.poll() is None:
            done = items.count_documents({"total": {"$exists": True}})
            if done >= n // 2:
                proc.send_signal(signal.SIGKILL)
                break
        proc.wait()
        if proc.returncode != -signal.SIGKILL:
            raise RuntimeError(f"the run ended (exit {proc.returncode}) before half")
        at_kill = items.count_documents({"total": {"$exists": True}})
        seconds, rss, text = run_measured(argv, cwd, env)
        check(self.client, db, n)
        self.client.drop_database(db)
        said = next((line.strip() for line in text.splitlines() if "resum" in line.lower()), "")
        return {
            "s": seconds,
            "rss_kib": rss,
            "polled_at_kill": done,
            "done_at_kill": at_kill,
            "left": n - at_kill,
            "said": said[:200],
        }


def pipeline_updates(client: Any) -> bool:
    """Does the server take pipeline updates (MongoDB 4.2+)? FerretDB 1.x and
    mongo-java-server 1.47 do not."""
    coll = client["bench_probe"]["probe"]
    coll.insert_one({"a": 1})
    try:
        coll.update_one({}, [{"$set": {"b": {"$add": ["$a", 1]}}}])
        return coll.find_one({}, {"b": 1}).get("b") == 2
    except Exception:
        return False
    finally:
        client.drop_database("bench_probe")


def summary(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


# --------------------------------------------------------------------------- report


def fmt_rate(x: float) -> str:
    return f"{x:,.0f}"


def section(ctx: dict[str, Any]) -> str:
    n, res, big, big_n = ctx["n"], ctx["results"], ctx["big"], ctx["big_n"]
    guard = (
        "`{_id}` alone, as such loops are usually written (alley's `transform=` is given no "
        "`where=`: on a fresh collection the same documents)"
        if ctx["guard"] == "id"
        else "`{_id, total: {$exists: false}}` (alley: `where=` on every update)"
    )
    lines = [
        START,
        "## Data migrations: a backfill on big collections",
        "",
        "Measured by `python bench/data_backfill.py "
        + " ".join(ctx["argv"])
        + "` (part of `nox -s bench`); generated: edit `bench/data_backfill.py`.",
        "",
        f"- **Date**: {ctx['date']}; **machine**: {os.cpu_count()} cores, "
        f"{platform.platform()}, Python {platform.python_version()}",
        f"- **Load**: {ctx['load']}",
        f"- **Server**: {ctx['server']} (version {ctx['version']}); pipeline updates: "
        + ("yes" if ctx["pipeline"] else "**no** (see below)"),
        f"- **Work**: N = {n:,} documents `{{_id: int, a, b, n: 0}}`; each tool sets `total` "
        "on the documents without it and increments the counter `n`; batch size "
        f"{ctx['batch_size']}; every run's result is checked (no document left, every "
        "counter exactly 1). The filter of each per-document update (alley "
        f"`transform=`, the naive and hand-written loops): {guard}.",
        f"- **Repeats**: {ctx['repeats']}, round-robin (one run of each tool per repeat, "
        "the order rotated each repeat). Median, and the spread min–max.",
        "- **Measure**: wall clock of the tool's process (start-up and connection "
        "included: a fresh project per run), documents/second = N / seconds; peak RSS "
        "= `ru_maxrss` of that process alone (`os.wait4` in a small launcher that "
        "forks it, since the high-water mark survives `exec`).",
        f"- **mongomig**: {ctx['mongomig']}",
        "",
        "| tool | what it does | docs/s median | spread (min–max) | seconds median "
        "| peak RSS median | × hand-written bulk_write |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    bulk = res.get("hand-written bulk_write", {}).get("docs_per_s")
    for tool, what in TOOLS.items():
        r = res.get(tool)
        if not r or "na" in r:
            lines.append(f"| {tool} | {what} | n/a ({(r or {}).get('na', '—')}) | | | | |")
            continue
        d, s, m = r["docs_per_s"], r["s"], r["rss_kib"]
        x = f"{d['median'] / bulk['median']:.2f}×" if bulk else "—"
        lines.append(
            f"| {tool} | {what} | {fmt_rate(d['median'])} | {fmt_rate(d['min'])}–"
            f"{fmt_rate(d['max'])} | {s['median']:.1f} s | {m['median'] / 1024:.0f} MiB | {x} |"
        )
    lines += ["", "![](benchmarks-backfill.png)", "", "### Resume after `kill -9` at half", ""]
    lines += [
        "The tool runs; the benchmark polls the count of done documents and sends SIGKILL "
        "when it reaches N/2, then times the next run of the same command (lease expiry, "
        "start-up and the rest of the work included) and checks every counter is 1. "
        f"N = {ctx['resume_n']:,}, with `where` on every update (what makes a replayed "
        "batch skip the documents it already did).",
        "",
        "| tool | done at the kill | next run | its output about resuming | "
        "every counter exactly 1 |",
        "| --- | --- | --- | --- | --- |",
    ]
    for tool, r in ctx["resume"].items():
        if "na" in r:
            lines.append(f"| {tool} | n/a ({r['na']}) | | | |")
            continue
        lines.append(
            f"| {tool} | {r['done_at_kill']:,} of {ctx['resume_n']:,} | {r['s']:.1f} s "
            f"({r['left'] / r['s']:,.0f} docs/s over the {r['left']:,} left) "
            f"| {r['said'] or '—'} | yes |"
        )
    lines += ["", f"### At N = {big_n:,}: throughput and peak RSS against N", ""]
    if big:
        lines += [
            f"One run of each at N = {big_n:,}, after the repeats (the ratio column: peak RSS "
            f"over the median at N = {n:,}).",
            "",
            f"| tool | docs/s | seconds | × hand-written bulk_write | peak RSS | RSS × N = {n:,} |",
            "| --- | --- | --- | --- | --- | --- |",
        ]
        bulk_big = big.get("hand-written bulk_write", {}).get("docs_per_s")
        for tool, r in big.items():
            if "na" in r:
                lines.append(f"| {tool} | n/a ({r['na']}) | | | | |")
                continue
            small = res[tool]["rss_kib"]["median"] if "rss_kib" in res.get(tool, {}) else None
            x = f"{r['docs_per_s'] / bulk_big:.2f}×" if bulk_big else "—"
            q = f"{r['rss_kib'] / small:.2f}×" if small else "—"
            lines.append(
                f"| {tool} | {fmt_rate(r['docs_per_s'])} | {r['s']:.1f} s | {x} "
                f"| {r['rss_kib'] / 1024:.1f} MiB | {q} |"
            )
    else:
        lines.append("Not measured in this run (`--big-n`).")
    lines += ["", "### Targets", "", "| target | measured | met |", "| --- | --- | --- |"]
    for name, value, met, note in ctx["targets"]:
        verdict = "n/a" if met is None else ("met" if met else "**missed**")
        lines.append(f"| {name} | {value} | {verdict}{': ' + note if note else ''} |")
    notes = ROOT / "bench" / "FINDINGS-backfill.md"
    if notes.exists():
        lines += ["", notes.read_text().strip()]
    lines.append(END)
    return "\n".join(lines) + "\n"


def targets(ctx: dict[str, Any]) -> list[tuple[str, str, bool | None, str]]:
    res = ctx["results"]

    def med(tool: str) -> float | None:
        r = res.get(tool)
        return None if not r or "na" in r else r["docs_per_s"]["median"]

    out: list[tuple[str, str, bool | None, str]] = []

    def ratio_row(name: str, a: float | None, b: float | None, limit: float) -> None:
        if a is None or b is None:
            out.append((name, "—", None, "not measured"))
        else:
            out.append((name, f"{a / b:.2f}×", a / b >= limit, ""))

    best = max(filter(None, [med("alley set=/update="), med("alley transform=")]), default=None)
    ratio_row(
        "helper (transform=, the like-for-like path) ≥ 0.9× hand-written bulk_write",
        med("alley transform="),
        med("hand-written bulk_write"),
        0.9,
    )
    ratio_row(
        "helper (fastest path: server-side, as mongomig's backfill) ≥ 1.0× mongomig",
        best,
        med("mongomig backfill"),
        1.0,
    )
    floor = med("update_many (floor)")
    server = med("alley set=/update=")
    if floor and server:
        slow = floor / server
        out.append(
            ("server-side path within 1.5× of update_many", f"{slow:.2f}× slower", slow <= 1.5, "")
        )
    else:
        out.append(("server-side path within 1.5× of update_many", "—", None, "not measured"))
    big = ctx["big"]
    bulk_big = big.get("hand-written bulk_write", {}).get("docs_per_s")
    alley_big = big.get("alley transform=", {}).get("docs_per_s")
    if bulk_big and alley_big:
        q = alley_big / bulk_big
        out.append(
            (
                f"helper (transform=) ≥ 0.9× hand-written bulk_write at N={ctx['big_n']:,}",
                f"{q:.2f}× (one run)",
                q >= 0.9,
                "",
            )
        )
    for tool, r in big.items():
        if not tool.startswith("alley") or "na" in r or "rss_kib" not in res.get(tool, {}):
            continue
        q = r["rss_kib"] / res[tool]["rss_kib"]["median"]
        out.append(
            (
                f"peak RSS of {tool} at N={ctx['big_n']:,} within 1.2× of N={ctx['n']:,}",
                f"{q:.2f}×",
                q <= 1.2,
                "",
            )
        )
    resumed = [r for t, r in ctx["resume"].items() if t.startswith("alley") and "na" not in r]
    if resumed:
        out.append(
            ("a resume does no work twice (alley)", "every counter 1 after kill -9 + up", True, "")
        )
    else:
        out.append(("a resume does no work twice (alley)", "—", None, "not measured"))
    return out


def write_section(path: Path, text: str) -> None:
    """Replace the backfill section of ``path`` (or append it)."""
    old = path.read_text() if path.exists() else "# Benchmarks\n"
    pattern = re.compile(re.escape(START) + ".*?" + re.escape(END) + "\n?", re.DOTALL)
    new = pattern.sub(lambda _: text, old) if START in old else old.rstrip("\n") + "\n\n" + text
    path.write_text(new)


def write_plot(ctx: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    res = ctx["results"]
    tools = [t for t in TOOLS if t in res and "na" not in res[t]]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.5))
    meds = [res[t]["docs_per_s"]["median"] for t in tools]
    lows = [m - res[t]["docs_per_s"]["min"] for t, m in zip(tools, meds, strict=True)]
    highs = [res[t]["docs_per_s"]["max"] - m for t, m in zip(tools, meds, strict=True)]
    colors = ["tab:blue" if t.startswith("alley") else "tab:gray" for t in tools]
    ax1.barh(tools, meds, xerr=[lows, highs], color=colors, capsize=4)
    ax1.set_xlabel("documents / second (median, bars: min–max)")
    ax1.set_title(f"Backfill of N={ctx['n']:,} ({ctx['repeats']} interleaved repeats)")
    ax1.invert_yaxis()
    rss = [res[t]["rss_kib"]["median"] / 1024 for t in tools]
    ax2.barh(tools, rss, color=colors)
    for tool, r in ctx["big"].items():
        if "na" not in r and tool in tools:
            ax2.plot(r["rss_kib"] / 1024, tools.index(tool), "kD")
    ax2.set_xlabel(f"peak RSS, MiB (bars: N={ctx['n']:,}; ◆: N={ctx['big_n']:,})")
    ax2.set_yticks([])
    ax2.invert_yaxis()
    fig.suptitle(ctx["server"], fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="N = 10,000; --big-n 100,000")
    parser.add_argument("--n", type=int, help="documents (default 100,000)")
    parser.add_argument(
        "--big-n",
        type=int,
        help="also one run of --big-tools at this N (default 1,000,000; 0: none)",
    )
    parser.add_argument(
        "--big-tools",
        nargs="+",
        default=["alley transform=", "hand-written bulk_write", "update_many (floor)"],
        help="the tools run once at --big-n (throughput and peak RSS against N)",
    )
    parser.add_argument(
        "--guard",
        choices=["id", "where"],
        default="id",
        help="the filter of per-document updates: {_id} alone (default) or {_id} and the "
        "backfill's where (resume runs always use where)",
    )
    parser.add_argument("--resume-n", type=int, help="documents of the resume runs (default N)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument(
        "--server",
        default="mongo-java-server",
        help="alley.testing server kind (default mongo-java-server: FerretDB 1.24 has no "
        "index for _id ranges, see the report)",
    )
    parser.add_argument("--tools", nargs="+", help="a subset of the tools (names as reported)")
    parser.add_argument("--no-resume", action="store_true")
    parser.add_argument("--docs", type=Path, default=DOCS)
    parser.add_argument("--cache", type=Path, default=CACHE_DIR)
    parser.add_argument(
        "--from-json",
        type=Path,
        help="only re-render the report and plot from a results-backfill.json",
    )
    args = parser.parse_args(argv)
    if args.from_json:
        ctx = json.loads(args.from_json.read_text())
        if ensure_plotting():
            write_plot(ctx, args.docs / "benchmarks-backfill.png")
        write_section(args.docs / "benchmarks.md", section(ctx))
        return 0
    n = args.n or (10_000 if args.quick else 100_000)
    if args.big_n is None:
        args.big_n = 100_000 if args.quick else 1_000_000
    plotting = ensure_plotting()
    import pymongo

    from alley.testing import provide_server

    started = time.perf_counter()
    load_before = os.getloadavg()
    tools = [t for t in TOOLS if not args.tools or t in args.tools]
    with (
        provide_server(kinds=[args.server]) as server,
        tempfile.TemporaryDirectory(prefix="alley-bench-backfill-") as tmp,
    ):
        client = pymongo.MongoClient(server.uri)
        bench = Bench(args, server, client, Path(tmp))
        log(
            f"server {server.description}; pipeline updates: {bench.pipeline}; "
            f"mongomig: {bench.mongomig_version}"
        )
        runs: dict[str, list[dict[str, float]]] = {t: [] for t in tools}
        failed: dict[str, str] = {}
        for repeat in range(args.repeats):
            order = tools[repeat % len(tools) :] + tools[: repeat % len(tools)]
            for tool in order:
                if tool in failed:
                    continue
                try:
                    runs[tool].append(r := bench.once(tool, n))
                    log(
                        f"repeat {repeat + 1} {tool}: {r['s']:.1f}s, {r['docs_per_s']:,.0f}/s, "
                        f"{r['rss_kib'] / 1024:.0f} MiB"
                    )
                except Exception as error:
                    failed[tool] = str(error)
                    log(f"repeat {repeat + 1} {tool}: failed: {error}")
        results: dict[str, Any] = {}
        for tool in tools:
            if tool in failed and not runs[tool]:
                results[tool] = {"na": failed[tool]}
            elif runs[tool]:
                results[tool] = {
                    key: summary([r[key] for r in runs[tool]])
                    for key in ("s", "docs_per_s", "rss_kib")
                }
        resume: dict[str, Any] = {}
        resume_n = args.resume_n or n
        for tool in [] if args.no_resume else [t for t in RESUMABLE if t in tools]:
            try:
                resume[tool] = bench.resume(tool, resume_n)
                log(f"resume {tool}: {resume[tool]}")
            except Exception as error:
                resume[tool] = {"na": str(error)}
                log(f"resume {tool}: failed: {error}")
        big: dict[str, Any] = {}
        if args.big_n:
            for tool in [t for t in args.big_tools if t in tools]:
                try:
                    big[tool] = bench.once(tool, args.big_n)
                    log(f"N={args.big_n} {tool}: {big[tool]}")
                except Exception as error:
                    big[tool] = {"na": str(error)}
                    log(f"N={args.big_n} {tool}: failed: {error}")
        client.close()
        load_after = os.getloadavg()
        ctx: dict[str, Any] = {
            "argv": argv if argv is not None else sys.argv[1:],
            "date": dt.date.today().isoformat(),
            "n": n,
            "big_n": args.big_n,
            "resume_n": resume_n,
            "guard": args.guard,
            "repeats": args.repeats,
            "batch_size": args.batch_size,
            "server": server.description,
            "version": server.version,
            "pipeline": bench.pipeline,
            "mongomig": f"{bench.mongomig_version}, installed from the package index into "
            f"its own venv ({args.cache / 'mongomig'})"
            + (
                ""
                if bench.pipeline
                else "; its lock (`mongomig.migrations.lock.MigrationLock`) takes and renews "
                "its lease with pipeline updates, which this server refuses (`mongomig "
                "upgrade` fails before any migration), so it runs its own CLI with "
                "`try_acquire`/`refresh`/`release` made no-ops: its backfill, checkpoints "
                "and history are its own; no lock round trips (alley pays its lease's)"
            ),
            "results": results,
            "resume": resume,
            "big": big,
            "load": (
                f"1-minute load average {load_before[0]:.2f} at the start, "
                f"{load_after[0]:.2f} at the end ({os.cpu_count()} cores shared with other work); "
                f"total {time.perf_counter() - started:.0f} s"
            ),
        }
        ctx["targets"] = targets(ctx)
    if plotting:
        write_plot(ctx, args.docs / "benchmarks-backfill.png")
    write_section(args.docs / "benchmarks.md", section(ctx))
    (args.cache / "results-backfill.json").write_text(json.dumps(ctx, default=str, indent=1))
    for name, value, met, note in ctx["targets"]:
        verdict = "n/a" if met is None else "met" if met else "MISSED"
        log(f"target {verdict}: {name}: {value} {note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
