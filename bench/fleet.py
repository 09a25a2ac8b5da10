# ruff: noqa: RUF001, PLR0915
"""Fleet benchmark: one alley command over many databases against a process per database.

    python bench/fleet.py                        # 50 databases x 20 migrations, 3 repeats;
                                                 # growth at 1, 10, 50, 200 databases
    python bench/fleet.py --quick                # 10 x 5, 1 repeat; growth at 1, 5, 10, 20
    python bench/fleet.py --databases 20 --migrations 10 --growth 10 40 --repeats 2
    python bench/fleet.py --from-json ~/.cache/alley/bench/results-fleet.json

Every database gets the same M migrations, each a small real write (``$inc`` of its own
counter document, upserted). Four ways to bring D databases up to date, interleaved
(round-robin, the order rotated each repeat): ``alley --databases 'P*' --jobs 1 up``,
the same with ``--jobs 4`` (threads), a shell loop running ``alley -db NAME up`` once per
database, and the same processes four at a time (``xargs -P 4``: processes instead of
threads). After every run each database must hold M records in ``db_migrations`` and
M counters of exactly 1; the databases are dropped and seeded again between runs.
Then the growth of ``--jobs 4 up`` with the number of databases (and ``status`` over
the same databases, all applied), against the floor of the work itself (the same
writes sent by this process).

Writes a section of ``docs/benchmarks.md`` (between the ``fleet`` markers, which
``bench/run.py`` keeps) and ``docs/benchmarks-fleet.png``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import itertools
import json
import os
import platform
import re
import resource
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from peers import CACHE_DIR
from run import ENV, command_counts, ensure_plotting

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
START = "<!-- fleet:start -->"
END = "<!-- fleet:end -->"
PREFIX = "bench_fleet_"
TIMEOUT = 3600.0
HISTORY = "db_migrations"
COMMAND_COUNT = 10  # databases of the second command count (the first: 1)

VARIANTS = {
    "--jobs 1": "`alley --databases 'P*' --jobs 1 up`: one process, one database at a time",
    "--jobs 4": "`alley --databases 'P*' --jobs 4 up`: one process, four databases at a time",
    "shell loop": "`for d in …; do alley -db $d up; done`: a process per database",
    "processes -P 4": "`xargs -P 4 -I{} alley -db {} up` (the names on its input): a "
    "process per database, four at a time (processes instead of threads)",
}
BASELINE = "shell loop"

MIGRATION = """def up(db):
    db.counters.update_one({{"_id": {key!r}}}, {{"$inc": {{"n": 1}}}}, upsert=True)


def down(db):
    db.counters.update_one({{"_id": {key!r}}}, {{"$inc": {{"n": -1}}}})
"""

SUMMARY = re.compile(r"^(\d+) databases?: (.*) \((\d+) at a time, ([\d.]+)s\); exit (\d+)$", re.M)
LINE = re.compile(r"^(\S+): (.+?) in ([\d.]+)s", re.M)


def log(line: str) -> None:
    print(f"bench-fleet: {line}", file=sys.stderr, flush=True)


def summary(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


# --------------------------------------------------------------------------- set-up


def make_project(root: Path, migrations: int) -> None:
    """``migrations/`` with ``migrations`` counter migrations (a URL without a database:
    the databases are given per command)."""
    folder = root / "migrations"
    folder.mkdir(parents=True)
    for i in range(1, migrations + 1):
        key = f"{i:04}"
        (folder / f"{key}_counter_{i}.py").write_text(MIGRATION.format(key=key))


def names(count: int) -> list[str]:
    return [f"{PREFIX}{i:03}" for i in range(count)]


def drop_all(client: Any) -> None:
    """Every database of the benchmark (and the heartbeat siblings alley makes on a
    server with one writer per database, ``<name>_alley``)."""
    for name in client.list_database_names():
        if name.startswith(PREFIX):
            client.drop_database(name)


def seed(client: Any, count: int) -> list[str]:
    """``count`` fresh databases, each holding one document (a database exists on the
    server, and so matches a pattern, once something is written to it)."""
    drop_all(client)
    targets = names(count)
    for name in targets:
        client[name].seed.insert_one({"_id": "seed"})
    return targets


def check(client: Any, targets: list[str], migrations: int) -> None:
    """Every database has all ``migrations`` records and every counter exactly 1."""
    keys = {f"{i:04}" for i in range(1, migrations + 1)}
    for name in targets:
        db = client[name]
        records = db[HISTORY].count_documents({})
        counters = {d["_id"]: d["n"] for d in db.counters.find()}
        if records != migrations or set(counters) != keys or set(counters.values()) != {1}:
            bad = {k: v for k, v in counters.items() if v != 1}
            raise RuntimeError(
                f"{name}: {records} records of {migrations}, {len(counters)} counters, not 1: {bad}"
            )


# --------------------------------------------------------------------------- measuring


def run_timed(argv: list[str], cwd: Path) -> tuple[float, str]:
    """Wall seconds of one process and its output; raises on a non-zero exit."""
    start = time.perf_counter()
    done = subprocess.run(
        argv, cwd=cwd, env=ENV, capture_output=True, text=True, timeout=TIMEOUT, check=False
    )
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        tail = ((done.stderr or done.stdout).strip().splitlines() or ["no output"])[-1]
        raise RuntimeError(f"exit {done.returncode}: {tail[:160]}")
    return seconds, done.stdout


def children_cpu() -> float:
    """CPU seconds (user + system) of this process's waited-for children so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def process_cpu(pid: int | None) -> float | None:
    """CPU seconds (user + system) of process ``pid`` so far (Linux ``/proc``), or None."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def parse_fleet(text: str, count: int, expect: str) -> dict[str, Any]:
    """The summary line's in-process seconds and the per-database seconds of the lines;
    raises unless every one of ``count`` databases ended ``expect``."""
    found = SUMMARY.search(text)
    if not found:
        raise RuntimeError(f"no summary line in: {text.strip()[-200:]}")
    if int(found[1]) != count or found[2] != f"{count} {expect}" or found[5] != "0":
        raise RuntimeError(f"unexpected summary: {found[0]}")
    per_db = [float(m[3]) for m in LINE.finditer(text) if m[1].startswith(PREFIX)]
    return {"inside_s": float(found[4]), "per_db": per_db, "summary": found[0]}


class Bench:
    def __init__(self, args: argparse.Namespace, server: Any, client: Any, tmp: Path) -> None:
        self.args, self.server, self.client = args, server, client
        exe = Path(sys.executable).parent / "alley"
        self.alley = str(exe) if exe.exists() else shutil.which("alley") or "alley"
        self.projects: dict[int, Path] = {}
        self.tmp = tmp

    def project(self, migrations: int) -> Path:
        if migrations not in self.projects:
            root = self.tmp / f"project{migrations}"
            make_project(root, migrations)
            self.projects[migrations] = root
        return self.projects[migrations]

    def fleet_argv(self, jobs: int, command: str = "up") -> list[str]:
        return [
            self.alley,
            "--url",
            self.server.uri,
            "--databases",
            f"{PREFIX}*",
            "--jobs",
            str(jobs),
            command,
        ]

    def loop_argv(self, targets: list[str]) -> list[str]:
        script = (
            f"for d in {' '.join(targets)}; do "
            f"{shlex.quote(self.alley)} --url {shlex.quote(self.server.uri)} -db $d up "
            "|| exit 1; done"
        )
        return ["bash", "-c", script]

    def parallel_argv(self, targets: list[str], jobs: int) -> list[str]:
        # Each process's stderr in its own file (err-NAME.txt): four processes write at
        # once, and a failure must be told by its own message.
        alley = f"{shlex.quote(self.alley)} --url {shlex.quote(self.server.uri)}"
        script = (
            f"printf '%s\\n' {' '.join(targets)} | xargs -P {jobs} -I{{}} "
            f"sh -c '{alley} -db {{}} up 2> err-{{}}.txt'"
        )
        return ["bash", "-c", script]

    def once(self, variant: str, count: int, migrations: int) -> dict[str, Any]:
        """One fresh run of ``variant`` over ``count`` databases, checked, then dropped."""
        targets = seed(self.client, count)
        root = self.project(migrations)
        cpu, server_cpu = children_cpu(), process_cpu(self.server.pid)
        if variant == "shell loop":
            seconds, _ = run_timed(self.loop_argv(targets), root)
            result: dict[str, Any] = {"s": seconds}
        elif variant.startswith("processes"):
            jobs = int(variant.rsplit(maxsplit=1)[-1])
            try:
                seconds, _ = run_timed(self.parallel_argv(targets, jobs), root)
            except RuntimeError as error:
                said = [
                    f"{e.stem[4:]}: {line}"
                    for e in sorted(root.glob("err-*.txt"))
                    for line in e.read_text().splitlines()
                    if "error" in line
                ]
                raise RuntimeError(f"{error}; {'; '.join(said[:3]) or 'no error line'}") from None
            result = {"s": seconds}
        else:
            jobs = int(variant.rsplit(maxsplit=1)[-1])
            seconds, text = run_timed(self.fleet_argv(jobs), root)
            result = {"s": seconds, **parse_fleet(text, count, "applied")}
        result["cpu_s"] = children_cpu() - cpu
        after = process_cpu(self.server.pid)
        if server_cpu is not None and after is not None:
            result["server_cpu_s"] = after - server_cpu
        check(self.client, targets, migrations)
        result["s_per_db"] = seconds / count
        return result

    def status(self, count: int, migrations: int) -> dict[str, Any]:
        """``status`` over the ``count`` databases the last run left (all applied)."""
        seconds, text = run_timed(self.fleet_argv(4, "status"), self.project(migrations))
        return {"s": seconds, "s_per_db": seconds / count, **parse_fleet(text, count, "up to date")}

    def commands(self, count: int, migrations: int) -> dict[str, dict[str, int]]:
        """The server commands of ``--jobs 1 up`` then ``status`` over ``count`` fresh
        databases, by command name (a PyMongo command listener in the alley process)."""
        targets = seed(self.client, count)
        tail = ["--path", str(self.project(migrations))]
        out: dict[str, dict[str, int]] = {}
        for command in ("up", "status"):
            argv = self.fleet_argv(1, command)[1:]
            counts = command_counts(argv[:-1] + tail + argv[-1:])
            if counts is None:
                raise RuntimeError(f"no command counts from {command}")
            out[command] = counts
        check(self.client, targets, migrations)
        drop_all(self.client)
        return out

    def work_floor(self, count: int, migrations: int) -> dict[str, float]:
        """The writes alone: this process (connected already) sends each database's
        ``migrations`` counter upserts, one database after another."""
        targets = seed(self.client, count)
        start = time.perf_counter()
        for name in targets:
            counters = self.client[name].counters
            for i in range(1, migrations + 1):
                counters.update_one({"_id": f"{i:04}"}, {"$inc": {"n": 1}}, upsert=True)
        seconds = time.perf_counter() - start
        drop_all(self.client)
        return {"s": seconds, "s_per_db": seconds / count}

    def process_floor(self) -> float:
        """A Python process that imports pymongo and pings the server once."""
        code = (
            "import pymongo, sys; c = pymongo.MongoClient(sys.argv[1]); "
            "c.admin.command('ping'); c.close()"
        )
        seconds = [run_timed([sys.executable, "-c", code, self.server.uri], self.tmp)[0]]
        seconds += [run_timed([sys.executable, "-c", code, self.server.uri], self.tmp)[0]]
        return statistics.median(seconds)


def measure_growth(bench: Bench, sizes: list[int], migrations: int, repeats: int) -> dict[str, Any]:
    """``--jobs 4 up`` at each size, ``repeats`` times round-robin (the order rotated
    each repeat); after a size's last run, ``status`` over its databases (all applied)."""
    growth: dict[str, Any] = {}
    ups: dict[int, list[dict[str, Any]]] = {size: [] for size in sizes}
    failed: dict[int, str] = {}
    for size in sizes:
        growth[str(size)] = {"work_floor": bench.work_floor(size, migrations)}
    for repeat in range(repeats):
        order = sizes[repeat % len(sizes) :] + sizes[: repeat % len(sizes)]
        for size in order:
            if size in failed:
                continue
            try:
                ups[size].append(r := bench.once("--jobs 4", size, migrations))
                log(f"growth repeat {repeat + 1}, {size} databases: up {r['s']:.1f}s")
                if len(ups[size]) == repeats:
                    st = growth[str(size)]["status"] = bench.status(size, migrations)
                    log(f"growth {size} databases: status {st['s']:.1f}s")
            except Exception as error:
                failed[size] = str(error)
                log(f"growth {size} databases: failed: {error}")
    for size in sizes:
        runs = ups[size]
        if not runs:
            growth[str(size)] = {"na": failed.get(size, "not run")}
            continue
        seconds = summary([r["s"] for r in runs])
        growth[str(size)]["up"] = {
            "s": seconds["median"],
            "spread": seconds,
            "s_per_db": seconds["median"] / size,
            "inside_s": statistics.median(r["inside_s"] for r in runs),
            "per_db": [x for r in runs for x in r["per_db"]],
            "runs": len(runs),
        }
        for key in ("cpu_s", "server_cpu_s"):
            if all(key in r for r in runs):
                growth[str(size)]["up"][key] = statistics.median(r[key] for r in runs)
        growth[str(size)].setdefault("status", {"na": failed.get(size, "not run")})
    return growth


# --------------------------------------------------------------------------- report


def fmt_s(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.1f} s"


def section(ctx: dict[str, Any]) -> str:
    d, m, res = ctx["databases"], ctx["migrations"], ctx["results"]
    base = res.get(BASELINE, {}).get("s")
    lines = [
        START,
        "## Many databases: one command over a fleet",
        "",
        "Measured by `python bench/fleet.py"
        + "".join(" " + shlex.quote(a) for a in ctx["argv"])
        + "` (part of `nox -s bench`); generated: edit `bench/fleet.py`.",
        "",
        f"- **Date**: {ctx['date']}; **machine**: {ctx['machine']}",
        f"- **alley**: {ctx['alley']}",
        f"- **Load**: {ctx['load']}",
        f"- **Server**: {ctx['server']} (version {ctx['version']})",
        f"- **Work**: each database gets the same {m} migrations, each one "
        "`update_one({_id: <id>}, {$inc: {n: 1}}, upsert=True)` on its `counters`; the "
        "databases (`bench_fleet_000`, …) are dropped and seeded again (one document "
        f"each) before every run; after every run each database must hold {m} records in "
        f"`{HISTORY}` and {m} counters of exactly 1 (checked: every run passed).",
        f"- **Repeats**: {ctx['repeats']}, round-robin (one run of each way per repeat, "
        "the order rotated each repeat). Median, and the spread min–max. Wall clock of "
        "the whole command (`subprocess.run`), start-up and connection included. *CPU*: "
        "user + system seconds of the measured processes (`getrusage` of the children: "
        "the alley process, or bash and every alley of the loop) / of the server's "
        "process (`/proc/PID/stat`), over the same run.",
        "",
        f"### {d} databases × {m} migrations",
        "",
        "Run in the project folder, `P` = `bench_fleet_`: "
        "`alley --url URL --databases 'P*' --jobs J up`; the loop: "
        "`bash -c 'for d in P000 P001 …; do alley --url URL -db $d up || exit 1; done'`; "
        "four processes at a time: `printf '%s\\n' P000 P001 … | xargs -P 4 -I{} alley --url "
        "URL -db {} up`.",
        "",
        "| way | what it is | seconds median | spread (min–max) | per database "
        "| inside alley (summary line) | CPU: alley processes / server | × the shell loop |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for variant, what in VARIANTS.items():
        r = res.get(variant)
        if not r or "na" in r:
            lines.append(f"| {variant} | {what} | n/a ({(r or {}).get('na', '—')}) | | | | | |")
            continue
        s = r["s"]
        inside = f"{r['inside_s']['median']:.1f} s" if "inside_s" in r else "—"
        x = f"{s['median'] / base['median']:.2f}×" if base else "—"
        lines.append(
            f"| {variant} | {what} | {s['median']:.1f} s | {s['min']:.1f}–{s['max']:.1f} s "
            f"| {fmt_s(s['median'] / d)} | {inside} | {cpu_cell(r)} | {x} |"
        )
    lines += [
        "",
        "Floors, per database: the writes alone (this benchmark's own connected client "
        f"sending the {m} upserts, one database after another): "
        f"{fmt_s(ctx['work_floor']['s_per_db'])}; a Python process that imports pymongo "
        f"and pings the server: {fmt_s(ctx['process_floor'])}.",
        "",
        "![](benchmarks-fleet.png)",
        "",
    ]
    lines += commands_section(ctx)
    lines += [
        f"### Growth: `--jobs 4 up` at more databases ({m} migrations each)",
        "",
        f"{ctx['growth_repeats']} run(s) at each size, round-robin over the sizes (the "
        "order rotated each repeat), each on fresh databases and checked; after a size's "
        "last run, one `--jobs 4 status` over the same databases (all applied: the "
        "read-only cost). *In alley, per database*: the median of the per-database times "
        "alley prints (each database's own command in its thread, four at a time on "
        f"{os.cpu_count()} cores). *Work floor*: the same writes sent by this benchmark's "
        "connected client, one database after another.",
        "",
        "*Marginal*: the extra seconds over the next smaller size, per extra database "
        "(constant when the time grows linearly).",
        "",
        "| databases | `up` seconds median (min–max) | `up` per database | marginal "
        "| in alley, per database | work floor per database | `up` CPU: alley / server "
        "| `status` seconds | `status` per database |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    marginal = marginals(ctx["growth"])
    for size, g in ctx["growth"].items():
        if "na" in g:
            lines.append(f"| {size} | n/a ({g['na']}) | | | | | | | |")
            continue
        up, st = g["up"], g.get("status", {})
        floor = g.get("work_floor", {}).get("s_per_db")
        per = statistics.median(up["per_db"]) if up.get("per_db") else None
        lines.append(
            f"| {size} | {up['s']:.1f} s ({up['spread']['min']:.1f}–{up['spread']['max']:.1f}) "
            f"| {fmt_s(up['s_per_db'])} "
            f"| {fmt_s(marginal[size]) if size in marginal else '—'} "
            f"| {fmt_s(per) if per is not None else '—'} "
            f"| {fmt_s(floor) if floor is not None else '—'} | {cpu_cell(up)} "
            + (
                f"| {st['s']:.1f} s | {fmt_s(st['s_per_db'])} |"
                if "s" in st
                else f"| n/a ({st.get('na', '—')}) | |"
            )
        )
    lines += ["", "### Reading", ""]
    lines += [f"- {line}" for line in ctx["reading"]]
    notes = ROOT / "bench" / "FINDINGS-fleet.md"
    if notes.exists():
        lines += ["", notes.read_text().strip()]
    lines.append(END)
    return "\n".join(lines) + "\n"


def cpu_cell(r: dict[str, Any]) -> str:
    """Median CPU seconds of the measured processes and of the server, as ``a / b``."""

    def one(key: str) -> str:
        value = r.get(key)
        if value is None:
            return "—"
        return f"{value['median'] if isinstance(value, dict) else value:.1f} s"

    return f"{one('cpu_s')} / {one('server_cpu_s')}"


def commands_section(ctx: dict[str, Any]) -> list[str]:
    """Server commands per database: (the count over 10 databases - over 1) / 9."""
    counts = ctx.get("commands", {})
    if "na" in counts or "1" not in counts:
        return [f"Server commands: not measured ({counts.get('na', '—')}).", ""]
    n = max(int(k) for k in counts)
    lines = [
        f"### Server commands per database ({ctx['migrations']} migrations)",
        "",
        "Counted by a PyMongo command listener in the alley process, `--jobs 1` over 1 "
        f"then {n} fresh databases: per database = (count over {n} − count over 1) / "
        f"{n - 1}; fixed = the rest of the count over 1 (connecting, listing, discovery). "
        "Lease renewals depend on time, so the counts vary a little between runs.",
        "",
        "| command | `up` per database | `up` fixed | `status` per database | `status` fixed |",
        "| --- | --- | --- | --- | --- |",
    ]
    one, many = counts["1"], counts[str(n)]
    names = sorted(
        {c for op in ("up", "status") for c in (*one[op], *many[op])},
        key=lambda c: -(many["up"].get(c, 0) + many["status"].get(c, 0)),
    )
    totals = [0.0, 0.0, 0.0, 0.0]
    for name in names:
        row = []
        for op in ("up", "status"):
            per = (many[op].get(name, 0) - one[op].get(name, 0)) / (n - 1)
            row += [per, one[op].get(name, 0) - per]
        totals = [a + b for a, b in zip(totals, row, strict=True)]
        lines.append(f"| `{name}` | " + " | ".join(f"{x:.1f}" for x in row) + " |")
    lines.append("| **all** | " + " | ".join(f"**{x:.1f}**" for x in totals) + " |")
    lines.append("")
    return lines


def marginals(growth: dict[str, Any]) -> dict[str, float]:
    """Per size: (its ``up`` seconds - the next smaller size's) / the extra databases."""
    sizes = sorted(int(k) for k, g in growth.items() if "na" not in g)
    return {
        str(b): (growth[str(b)]["up"]["s"] - growth[str(a)]["up"]["s"]) / (b - a)
        for a, b in itertools.pairwise(sizes)
    }


def reading(ctx: dict[str, Any]) -> list[str]:
    """Sentences computed from the numbers (the hand-written ones are in FINDINGS)."""
    out: list[str] = []
    res, growth = ctx["results"], ctx["growth"]
    base = res.get(BASELINE, {}).get("s", {}).get("median")
    for variant in ("--jobs 1", "--jobs 4", "processes -P 4"):
        s = res.get(variant, {}).get("s", {}).get("median")
        if s and base:
            out.append(
                f"`{variant}` took {s / base:.2f}× the time of the shell loop "
                f"({base / s:.1f}× faster) over {ctx['databases']} databases."
            )
    sizes = [int(k) for k, g in growth.items() if "na" not in g]
    big = [k for k in sizes if k >= 10]
    if len(big) >= 2:
        first, last = min(big), max(big)
        a, b = growth[str(first)]["up"]["s_per_db"], growth[str(last)]["up"]["s_per_db"]
        out.append(
            f"`--jobs 4 up`, wall time per database: {fmt_s(a)} at {first} databases, "
            f"{fmt_s(b)} at {last} ({b / a:.2f}×; the fixed start-up is spread thinner)."
        )
        steps = [(k, v) for k, v in marginals(growth).items() if int(k) > first]
        if len(steps) >= 2:
            low, high = min(v for _, v in steps), max(v for _, v in steps)
            verdict = (
                "about linear (the marginal costs within 1.5× of each other)"
                if high <= 1.5 * low
                else "not linear: the marginal cost "
                + ("grows" if steps[-1][1] > steps[0][1] else "falls")
                + " with the number of databases"
            )
            shown = ", ".join(f"{fmt_s(v)} up to {k}" for k, v in steps)
            out.append(f"Marginal cost of a database with `--jobs 4`: {shown}: {verdict}.")
    one = growth.get("1", {}).get("up")
    if one and big:
        last = str(max(big))
        per = growth[last]["up"]["s_per_db"]
        out.append(
            f"One database through `--databases` takes {fmt_s(one['s'])} (start-up, "
            f"connection and listing included); at {last} databases each costs {fmt_s(per)} "
            f"of wall time with 4 at a time."
        )
    alone = growth.get("1", {}).get("up", {}).get("per_db")
    j1 = res.get("--jobs 1")
    if alone and j1 and j1.get("per_db") and big:
        last = str(max(big))
        out.append(
            "Each database's own command, as alley times it: "
            f"{fmt_s(statistics.median(alone))} when it is the only one, "
            f"{fmt_s(statistics.median(j1['per_db']))} with `--jobs 1` over "
            f"{ctx['databases']}, {fmt_s(statistics.median(growth[last]['up']['per_db']))} "
            f"with `--jobs 4` over {last} (four threads on {os.cpu_count()} cores)."
        )
    floor = ctx["work_floor"]["s_per_db"]
    if j1 and "per_db" in j1 and j1["per_db"]:
        inside = statistics.median(j1["per_db"])
        out.append(
            f"Per database with `--jobs 1`, inside alley: {fmt_s(inside)} median, against "
            f"{fmt_s(floor)} for the writes alone: {fmt_s(inside - floor)} per database "
            "beyond the work (lock, history reads and writes, run log)."
        )
    return out


def write_section(path: Path, text: str) -> None:
    """Replace the fleet section of ``path`` (or append it)."""
    old = path.read_text() if path.exists() else "# Benchmarks\n"
    pattern = re.compile(re.escape(START) + ".*?" + re.escape(END) + "\n?", re.DOTALL)
    new = pattern.sub(lambda _: text, old) if START in old else old.rstrip("\n") + "\n\n" + text
    path.write_text(new)


def write_plot(ctx: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    res = ctx["results"]
    ways = [v for v in VARIANTS if v in res and "na" not in res[v]]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.5))
    meds = [res[v]["s"]["median"] for v in ways]
    lows = [m - res[v]["s"]["min"] for v, m in zip(ways, meds, strict=True)]
    highs = [res[v]["s"]["max"] - m for v, m in zip(ways, meds, strict=True)]
    colors = ["tab:gray" if v == BASELINE else "tab:blue" for v in ways]
    ax1.barh(ways, meds, xerr=[lows, highs], color=colors, capsize=4)
    base = res[BASELINE]["s"]["median"] if BASELINE in ways else None
    for i, (v, m) in enumerate(zip(ways, meds, strict=True)):
        label = f" {m:.1f} s" + (f" ({m / base:.2f}×)" if base and v != BASELINE else "")
        ax1.text(m + res[v]["s"]["max"] - m, i, label, va="center", fontsize=8)
    ax1.set_xlim(0, max(res[v]["s"]["max"] for v in ways) * 1.3)
    ax1.set_xlabel("seconds (median, bars: min–max)")
    ax1.set_title(
        f"up: {ctx['databases']} databases × {ctx['migrations']} migrations "
        f"({ctx['repeats']} interleaved repeats)",
        fontsize=10,
    )
    ax1.invert_yaxis()
    sizes = sorted(int(k) for k, g in ctx["growth"].items() if "na" not in g)
    if sizes:
        g = ctx["growth"]
        up = [g[str(k)]["up"]["s_per_db"] * 1000 for k in sizes]
        ax2.plot(sizes, up, "o-", color="tab:blue", label="--jobs 4 up, wall / databases")
        st = [g[str(k)]["status"]["s_per_db"] * 1000 for k in sizes if "s" in g[str(k)]["status"]]
        if len(st) == len(sizes):
            ax2.plot(sizes, st, "s--", color="tab:green", label="--jobs 4 status")
        fl = [g[str(k)]["work_floor"]["s_per_db"] * 1000 for k in sizes]
        ax2.plot(sizes, fl, ":", color="tab:gray", label="the writes alone (floor)")
        if BASELINE in res and "na" not in res[BASELINE]:
            ax2.axhline(
                res[BASELINE]["s"]["median"] / ctx["databases"] * 1000,
                color="tab:red",
                linestyle="-.",
                label="shell loop (a process per database)",
            )
        ax2.set_xscale("log")
        ax2.set_yscale("log")
        ax2.set_xticks(sizes)
        ax2.set_xticklabels([str(k) for k in sizes])
        ax2.set_xlabel("databases")
        ax2.set_ylabel("ms per database")
        ax2.set_title("growth", fontsize=10)
        ax2.legend(fontsize=8)
    fig.suptitle(ctx["server"], fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def alley_revision() -> str:
    """The commit measured, and whether alley's sources differed from it."""

    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=False)
        return done.stdout.strip()

    commit = git("rev-parse", "--short", "HEAD") or "unknown"
    dirty = git("status", "--porcelain", "--", "src")
    return f"commit {commit}" + (
        f" with uncommitted changes in src/ ({len(dirty.splitlines())} files)" if dirty else ""
    )


def render(ctx: dict[str, Any], docs: Path, plotting: bool) -> None:
    ctx["reading"] = reading(ctx)
    docs.mkdir(parents=True, exist_ok=True)
    if plotting:
        write_plot(ctx, docs / "benchmarks-fleet.png")
    write_section(docs / "benchmarks.md", section(ctx))


# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="10 databases × 5 migrations, growth 5 10 20, 1 repeat"
    )
    parser.add_argument("--databases", type=int, help="databases of the comparison (50)")
    parser.add_argument("--migrations", type=int, help="migrations per database (20)")
    parser.add_argument(
        "--growth", type=int, nargs="+", help="database counts of --jobs 4 (10 50 200; 1 added)"
    )
    parser.add_argument("--repeats", type=int, help="interleaved repeats (3)")
    parser.add_argument(
        "--growth-repeats", type=int, help="interleaved repeats of the growth runs (--repeats)"
    )
    parser.add_argument(
        "--server",
        default="ferretdb",
        help="alley.testing server kind (ferretdb, the tests' default; or mongo-java-server)",
    )
    parser.add_argument("--docs", type=Path, default=DOCS)
    parser.add_argument("--cache", type=Path, default=CACHE_DIR)
    parser.add_argument(
        "--from-json",
        type=Path,
        help="only re-render the report and plot from a results-fleet.json",
    )
    args = parser.parse_args(argv)
    if args.from_json:
        ctx = json.loads(args.from_json.read_text())
        render(ctx, args.docs, ensure_plotting())
        return 0
    quick = args.quick
    count = args.databases or (10 if quick else 50)
    migrations = args.migrations or (5 if quick else 20)
    repeats = args.repeats or (1 if quick else 3)
    growth_repeats = args.growth_repeats or repeats
    sizes = sorted({1, *(args.growth or ([5, 10, 20] if quick else [10, 50, 200]))})
    plotting = ensure_plotting()
    import pymongo

    from alley.testing import provide_server

    started = time.perf_counter()
    load_before = os.getloadavg()
    with (
        provide_server(kinds=[args.server]) as server,
        tempfile.TemporaryDirectory(prefix="alley-bench-fleet-") as tmp,
    ):
        client = pymongo.MongoClient(server.uri)
        drop_all(client)
        bench = Bench(args, server, client, Path(tmp))
        log(f"server {server.description}; {count} databases × {migrations} migrations")
        ways = list(VARIANTS)
        runs: dict[str, list[dict[str, Any]]] = {v: [] for v in ways}
        failed: dict[str, str] = {}
        for repeat in range(repeats):
            order = ways[repeat % len(ways) :] + ways[: repeat % len(ways)]
            for variant in order:
                if variant in failed:
                    continue
                try:
                    runs[variant].append(r := bench.once(variant, count, migrations))
                    log(f"repeat {repeat + 1} {variant}: {r['s']:.1f}s")
                except Exception as error:
                    failed[variant] = str(error)
                    log(f"repeat {repeat + 1} {variant}: failed: {error}")
        results: dict[str, Any] = {}
        for variant in ways:
            done = runs[variant]
            if not done:
                results[variant] = {"na": failed.get(variant, "not run")}
                continue
            results[variant] = {"s": summary([r["s"] for r in done])}
            for key in ("cpu_s", "server_cpu_s"):
                if all(key in r for r in done):
                    results[variant][key] = summary([r[key] for r in done])
            if "inside_s" in done[0]:
                results[variant]["inside_s"] = summary([r["inside_s"] for r in done])
                results[variant]["per_db"] = [x for r in done for x in r["per_db"]]
        work = bench.work_floor(count, migrations)
        process = bench.process_floor()
        log(f"floors: writes {work['s_per_db'] * 1000:.0f} ms/db, process {process:.2f}s")
        commands: dict[str, Any] = {}
        try:
            for size in (1, COMMAND_COUNT):
                commands[str(size)] = bench.commands(size, migrations)
            log(f"commands: {commands}")
        except Exception as error:
            commands = {"na": str(error)}
            log(f"commands: failed: {error}")
        growth = measure_growth(bench, sizes, migrations, growth_repeats)
        drop_all(client)
        client.close()
        load_after = os.getloadavg()
        ctx: dict[str, Any] = {
            "argv": argv if argv is not None else sys.argv[1:],
            "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "machine": f"{os.cpu_count()} cores, {platform.platform()}, "
            f"Python {platform.python_version()}",
            "alley": alley_revision(),
            "databases": count,
            "migrations": migrations,
            "repeats": repeats,
            "growth_repeats": growth_repeats,
            "server": re.sub(r" at mongodb(\+srv)?://\S+$", "", server.description),
            "version": server.version,
            "results": results,
            "work_floor": work,
            "process_floor": process,
            "growth": growth,
            "commands": commands,
            "load": (
                f"1-minute load average {load_before[0]:.2f} at the start, "
                f"{load_after[0]:.2f} at the end ({os.cpu_count()} cores shared with other "
                f"work); total {time.perf_counter() - started:.0f} s"
            ),
        }
    args.cache.mkdir(parents=True, exist_ok=True)
    (args.cache / "results-fleet.json").write_text(json.dumps(ctx, default=str, indent=1))
    render(ctx, args.docs, plotting)
    for line in ctx["reading"]:
        log(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
