# ruff: noqa: RUF001, PLR0915
"""alley against its peers: start-up, status, up, down, no-op up, for N no-op migrations.

    python bench/run.py            # N = 10, 100, 1000 (about 10 minutes on 2 cores)
    python bench/run.py --quick    # N = 10, 100 and fewer repeats, to try it

Writes ``docs/benchmarks.md`` and ``docs/benchmarks.png`` and prints a summary. The server
comes from ``alley.testing`` (FerretDB unless ``ALLEY_TEST_MONGODB_URI`` or a ``mongod``
says otherwise); the peers are installed once into isolated environments under
``~/.cache/alley/bench`` (``ALLEY_BENCH_CACHE``). Every number is the wall-clock time of
one subprocess, measured with ``time.perf_counter`` around ``subprocess.run``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from peers import CACHE_DIR, OPERATIONS, Tool, all_tools

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
OP_TITLES = {
    "help": "`--help` (start-up)",
    "status": "`status`, N applied",
    "up": "`up`, N pending",
    "down": "`down` of all N",
    "noop_up": "`up`, nothing to do",
}
TIMEOUT = 600.0

Result = dict[str, Any]  # {"times": [...], "min": s, "median": s} or {"na": reason}


# --------------------------------------------------------------------------- helpers


def child_env() -> dict[str, str]:
    """The environment of every measured process: no alley settings leaking in, no colour."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("ALLEY_", "PYMONGO_MIGRATE_", "MONGODB_MIGRATIONS_"))
        and k != "MONGODB_URI"
    }
    env.update(NO_COLOR="1", TERM="dumb", PYTHONWARNINGS="ignore")
    return env


ENV = child_env()


def run_once(argv: list[str], cwd: Path | None = None) -> float:
    """Wall-clock seconds of one subprocess; raises on a non-zero exit."""
    start = time.perf_counter()
    done = subprocess.run(argv, cwd=cwd, env=ENV, capture_output=True, timeout=TIMEOUT, check=False)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        # bytes: Node may cut its piped output mid-character at process.exit()
        stderr, stdout = (x.decode(errors="replace").strip() for x in (done.stderr, done.stdout))
        lines = (stderr or stdout or "no output").splitlines()
        raise RuntimeError(f"exit {done.returncode}: {lines[-1][:120]}")
    return elapsed


def summarize(times: list[float]) -> Result:
    return {"times": times, "min": min(times), "median": statistics.median(times)}


def measure(argv: list[str], repeats: int, cwd: Path | None = None, warmup: int = 1) -> Result:
    try:
        for _ in range(warmup):
            run_once(argv, cwd)
        return summarize([run_once(argv, cwd) for _ in range(repeats)])
    except Exception as error:
        return {"na": str(error)}


def fmt_s(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms" if seconds < 10 else f"{seconds:.1f} s"


def cell(result: Result | None) -> str:
    if result is None:
        return "—"
    if "na" in result:
        return f"n/a ({result['na']})"
    return f"{fmt_s(result['median'])} <sub>min {fmt_s(result['min'])}</sub>"


def ratio(result: Result | None, base: Result | None) -> str:
    if not result or not base or "na" in result or "na" in base:
        return "—"
    return f"{result['median'] / base['median']:.2f}×"


def ensure_plotting() -> bool:
    """matplotlib is a bench-only dependency: install it into this environment if missing."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        print(
            f"bench: matplotlib is missing; installing it into {sys.prefix} (bench only)",
            file=sys.stderr,
        )
        done = subprocess.run(
            [sys.executable, "-m", "pip", "install", "--quiet", "matplotlib"], check=False
        )
        if done.returncode != 0:
            print("bench: could not install matplotlib; no plot", file=sys.stderr)
            return False
    return True


# --------------------------------------------------------------------------- measuring


def measure_workspace(
    tool: Tool, n: int, server: Any, client: Any, base: Path, reps: dict[str, int]
) -> dict[str, Result]:
    """status / up / down / no-op up of one tool with N migrations, on its own fresh database."""
    db = f"bench_{re.sub(r'[^a-z0-9]', '_', tool.name)}_{n}"
    client.drop_database(db)
    root = base / tool.name / str(n)
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    tool.write_migrations(root, n)
    uri = server.uri_for_database(db)
    cmds = {op: tool.command(op, root, uri, db) for op in OPERATIONS}
    history = client[db][tool.history_collection()]

    def applied() -> int:
        return history.count_documents(tool.applied_filter())

    def step(op: str, expect: int) -> float:
        argv, cwd = cmds[op]  # type: ignore[misc]
        seconds = run_once(argv, cwd)
        if (found := applied()) != expect:
            raise RuntimeError(f"{op} left {found} applied, expected {expect}")
        return seconds

    out: dict[str, Result] = {}
    for op, cmd in cmds.items():
        if isinstance(cmd, str):
            out[op] = {"na": cmd}
    can_down = "down" not in out

    # up of N pending, then down of all; one untimed up first (bytecode caches), undone
    # by dropping the database (cheaper than an untimed down at N=1000).
    ups: list[float] = []
    downs: list[float] = []
    try:
        step("up", n)
        client.drop_database(db)
        for _ in range(reps["updown"]):
            ups.append(step("up", n))
            if can_down:
                downs.append(step("down", 0))
            else:
                history.drop()
        out["up"] = summarize(ups)
        if can_down:
            out["down"] = summarize(downs)
    except Exception as error:
        out.setdefault("up", summarize(ups) if ups else {"na": str(error)})
        out.setdefault("down", {"na": str(error)})
        for op in ("status", "noop_up"):
            out.setdefault(op, {"na": "not measured: up failed"})
        client.drop_database(db)
        return out

    # status with N applied, and up with nothing to do (alley: plan + lock round trip).
    try:
        step("up", n)
    except Exception as error:
        out.setdefault("status", {"na": str(error)})
        out.setdefault("noop_up", {"na": str(error)})
        return out
    for op in ("status", "noop_up"):
        if op in out:
            continue
        argv, cwd = cmds[op]  # type: ignore[misc]
        out[op] = measure(argv, reps["status"] if n < 1000 else reps["status_big"], cwd)
        if "na" not in out[op] and applied() != n:
            out[op] = {"na": f"{op} changed the history"}
    client.drop_database(db)
    return out


def in_process_split(argv_tail: list[str], repeats: int) -> dict[str, float]:
    """Split ``python -m alley ARGS`` into time-to-end-of-main and interpreter shutdown."""
    code = (
        "import sys, time, runpy\n"
        f"sys.argv = ['alley', *{argv_tail!r}]\n"
        "try:\n    runpy.run_module('alley', run_name='__main__')\n"
        "except SystemExit:\n    pass\n"
        "sys.stderr.write(f'BENCH_END {time.time()!r}\\n')\n"
    )
    return _split([sys.executable, "-c", code], repeats)


def _split(command: list[str], repeats: int) -> dict[str, float]:
    """Medians of launch-to-``BENCH_END`` (printed by the script) and of the shutdown after."""
    mains: list[float] = []
    shutdowns: list[float] = []
    for _ in range(repeats):
        start = time.time()
        done = subprocess.run(command, env=ENV, capture_output=True, text=True, check=False)
        end = time.time()
        match = re.search(r"BENCH_END ([0-9.]+)", done.stderr)
        if not match:
            return {}
        mains.append(float(match.group(1)) - start)
        shutdowns.append(end - float(match.group(1)))
    return {"main": statistics.median(mains), "shutdown": statistics.median(shutdowns)}


def import_profile(argv_tail: list[str]) -> dict[str, Any]:
    """``python -X importtime -m alley ARGS``: total and the heaviest packages (self time)."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "alley", *argv_tail],
        env=ENV,
        capture_output=True,
        text=True,
        check=False,
    )
    per_package: dict[str, int] = {}
    for line in done.stderr.splitlines():
        match = re.match(r"import time:\s+(\d+) \|\s+\d+ \| +(\S+)", line)
        if match:
            package = match.group(2).split(".")[0]
            per_package[package] = per_package.get(package, 0) + int(match.group(1))
    heaviest = sorted(per_package.items(), key=lambda kv: -kv[1])[:8]
    return {
        "total_ms": sum(per_package.values()) / 1000,
        "top": [(name, us / 1000) for name, us in heaviest],
        "pymongo": any(k in per_package for k in ("pymongo", "bson", "mongoengine")),
    }


COUNTER = """
import collections, sys, runpy, pymongo.monitoring
counts = collections.Counter()
class Listener(pymongo.monitoring.CommandListener):
    def started(self, event):
        counts[event.command_name] += 1
    def succeeded(self, event):
        pass
    def failed(self, event):
        pass
pymongo.monitoring.register(Listener())
sys.argv = ["alley", *sys.argv[1:]]
try:
    runpy.run_module("alley", run_name="__main__")
except SystemExit:
    pass
sys.stderr.write("BENCH_COUNTS " + repr(dict(counts)) + "\\n")
"""


def command_counts(argv_tail: list[str]) -> dict[str, int] | None:
    """The server commands one ``alley ARGS`` sends (a global PyMongo command listener)."""
    done = subprocess.run(
        [sys.executable, "-c", COUNTER, *argv_tail],
        env=ENV,
        capture_output=True,
        text=True,
        check=False,
    )
    match = re.search(r"BENCH_COUNTS (\{.*\})", done.stderr)
    if not match:
        return None
    import ast

    return ast.literal_eval(match.group(1))


def ping_split(uri: str, repeats: int) -> dict[str, float]:
    """The pymongo-ping floor split like :func:`in_process_split`."""
    code = (
        "import sys, time, pymongo; "
        "pymongo.MongoClient(sys.argv[1]).admin.command('ping'); "
        "sys.stderr.write(f'BENCH_END {time.time()!r}\\n')"
    )
    return _split([sys.executable, "-c", code, uri], repeats)


def pyinstrument_profile(argv_tail: list[str], dest: Path) -> str | None:
    """A pyinstrument text profile of ``alley ARGS`` (bench-only dependency)."""
    try:
        import pyinstrument  # noqa: F401
    except ImportError:
        print("bench: installing pyinstrument into the bench env (bench only)", file=sys.stderr)
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "--quiet", "pyinstrument"], check=False
        )
    # --show: alley's frames even when it is installed (not editable) in site-packages
    profiler = [sys.executable, "-m", "pyinstrument", "--no-color", "-r", "text"]
    profiler += ["--show", "*site-packages/alley*"]
    subprocess.run(
        [*profiler, "-o", str(dest), "-m", "alley", *argv_tail],
        env=ENV,
        capture_output=True,
        text=True,
        check=False,
    )
    return dest.read_text() if dest.exists() else None


# --------------------------------------------------------------------------- reporting


def write_plot(results: dict[str, Any], ns: list[int], floors: dict[str, Result], path: Path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(11, 8), sharex=True)
    markers = ["o", "s", "^", "D", "v"]
    for ax, op in zip(axes.flat, ("status", "up", "down", "noop_up"), strict=True):
        for i, (tool, per_op) in enumerate(results.items()):
            points = [
                (n, per_op[op][n]["median"])
                for n in ns
                if n in per_op.get(op, {}) and "na" not in per_op[op][n]
            ]
            if points:
                xs, ys = zip(*points, strict=True)
                ax.plot(xs, ys, marker=markers[i % len(markers)], color=f"C{i}", label=tool)
        ping = floors.get("ping")
        if ping and "na" not in ping:
            ax.axhline(ping["median"], ls="--", c="grey", lw=1, label="floor: pymongo ping")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_title(OP_TITLES[op].replace("`", ""))
        ax.set_xlabel("N migrations")
        ax.set_ylabel("median wall time (s)")
        ax.set_xticks(ns, [str(n) for n in ns])
        ax.grid(True, which="both", alpha=0.3)
    labels: dict[str, Any] = {}
    for ax in axes.flat:  # one legend for all panels (a tool may lack an operation)
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            labels.setdefault(label, handle)
    fig.legend(labels.values(), labels.keys(), loc="lower center", ncol=len(labels), fontsize=9)
    fig.suptitle("alley vs peers: wall time of one CLI run vs N (log–log)")
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    fig.savefig(path, dpi=100)
    plt.close(fig)


def targets(
    results: dict[str, Any],
    startup: dict[str, Result],
    floors: dict[str, Result],
    ns,
    profile: dict[str, Any],
):
    """Each goal as (name, value, limit, met or None when it cannot be computed)."""
    top = max(ns)
    alley = results["alley"]
    rows = []

    def med(r: Result | None) -> float | None:
        return None if not r or "na" in r else r["median"]

    a_help, floor = med(startup.get("alley")), med(floors.get("python"))
    v = a_help / floor if a_help and floor else None
    rows.append(("`alley --help` ≤ 4× `python -c pass`", v, 4.0))

    a_status, ping = med(alley["status"].get(top)), med(floors.get("ping"))
    v = a_status / ping if a_status and ping else None
    rows.append((f"`status` with {top} applied ≤ 1.3× the pymongo-ping floor", v, 1.3))

    for op in ("status", "noop_up"):
        label = "`status`" if op == "status" else "`up` with nothing to do"
        # The measure: constant round trips (server commands, counted).
        small, large = profile.get(f"counts_{op}_small"), profile.get(f"counts_{op}")
        v = sum(large.values()) / sum(small.values()) if small and large else None
        rows.append(
            (f"{label} flat in N: server commands at N={top} ≤ 1.0× those at N={min(ns)}", v, 1.0)
        )
        # A stricter reading, in time: what the server spends reading N records remains.
        lo, hi = med(alley[op].get(min(ns))), med(alley[op].get(top))
        v = hi / lo if lo and hi else None
        rows.append((f"{label} flat in N, in time: t({top}) ≤ 1.2× t({min(ns)})", v, 1.2))

    peers_up = [
        (name, med(per_op["up"].get(top)))
        for name, per_op in results.items()
        if name != "alley" and med(per_op["up"].get(top))
    ]
    a_up = med(alley["up"].get(top))
    if peers_up and a_up:
        fastest, t = min(peers_up, key=lambda kv: kv[1])
        rows.append((f"`up` of {top} ≤ 0.5× the fastest peer ({fastest})", a_up / t, 0.5))
    else:
        rows.append((f"`up` of {top} ≤ 0.5× the fastest peer", None, 0.5))
    return [(name, v, limit, None if v is None else v <= limit) for name, v, limit in rows]


def write_markdown(ctx: dict[str, Any], path: Path) -> None:
    results, startup, floors, tools, ns = (
        ctx["results"],
        ctx["startup"],
        ctx["floors"],
        ctx["tools"],
        ctx["ns"],
    )
    server = ctx["server"]
    reps = ctx["reps"]
    top = max(ns)
    lines = [
        "# Benchmarks",
        "",
        "alley against its peers, measured by `nox -s bench` (`python bench/run.py`"
        + (" --quick" if ctx["quick"] else "")
        + "). Generated by the script: edit `bench/run.py`, not this file.",
        "",
        f"- **Date**: {ctx['date']}",
        f"- **Machine**: {os.cpu_count()} cores (`os.cpu_count()`), {platform.platform()}, "
        f"Python {platform.python_version()}",
        f"- **Server**: {server.description} (version {server.version}), one fresh "
        "database per tool and N on the same server",
        f"- **N** (no-op migrations): {', '.join(map(str, ns))}",
        f"- **Repeats**: {reps['startup']} for start-up and floors, {reps['status']} for "
        f"`status` and no-op `up` ({reps['status_big']} at N ≥ 1000; after 1 warm-up run), "
        f"{reps['updown']} rounds of "
        f"`up` + `down` ({reps['updown_big']} at N ≥ 1000), after 1 untimed `up`. "
        "Cells show the median and, small, the min.",
        "- **Measure**: wall-clock time of one subprocess (`time.perf_counter` around "
        "`subprocess.run`), output captured, no colour.",
        "",
        "| tool | version | language | environment |",
        "| --- | --- | --- | --- |",
    ]
    for tool in tools:
        status = f"n/a ({tool.unavailable})" if tool.unavailable else tool.version
        lines.append(f"| {tool.name} | {status} | {tool.language} | {tool.env_note} |")
    lines += [
        "",
        "## Floors",
        "",
        "| floor | command | median <sub>min</sub> |",
        "| --- | --- | --- |",
        f"| python | `python -c pass` | {cell(floors.get('python'))} |",
        '| pymongo ping | `python -c "import pymongo; '
        f"pymongo.MongoClient(uri).admin.command('ping')\"` | {cell(floors.get('ping'))} |",
        f"| node | `node -e 0` | {cell(floors.get('node'))} |",
        "",
        "## Start-up: `--help`",
        "",
        "| tool | median <sub>min</sub> | × `python -c pass` | × alley |",
        "| --- | --- | --- | --- |",
    ]
    for name, result in startup.items():
        lines.append(
            f"| {name} | {cell(result)} | {ratio(result, floors.get('python'))} "
            f"| {ratio(result, startup.get('alley'))} |"
        )
    for op in ("status", "up", "down", "noop_up"):
        lines += [
            "",
            f"## {OP_TITLES[op]}",
            "",
            "| tool | "
            + " | ".join(f"N={n}" for n in ns)
            + f" | × ping floor (N={top}) | × alley (N={top}) |",
            "| --- | " + " | ".join("---" for _ in ns) + " | --- | --- |",
        ]
        for name, per_op in results.items():
            by_n = per_op.get(op, {})
            row = [cell(by_n.get(n)) for n in ns]
            lines.append(
                f"| {name} | "
                + " | ".join(row)
                + f" | {ratio(by_n.get(top), floors.get('ping'))}"
                + f" | {ratio(by_n.get(top), results['alley'][op].get(top))} |"
            )
    lines += ["", "![](benchmarks.png)", "", "## Targets", ""]
    lines += [
        "Goals, reported as ratios of medians (never asserted in tests).",
        "",
        "| target | measured | met |",
        "| --- | --- | --- |",
    ]
    for name, value, _limit, met in ctx["targets"]:
        shown = "—" if value is None else f"{value:.2f}×"
        verdict = "n/a" if met is None else ("met" if met else "**missed**")
        lines.append(f"| {name} | {shown} | {verdict} |")
    lines += ["", "## Where alley's time goes", ""]
    lines += profile_section(ctx)
    path.write_text("\n".join(lines) + "\n" + kept_backfill_section(path))


def kept_backfill_section(path: Path) -> str:
    """The sections ``bench/data_backfill.py`` and ``bench/fleet.py`` wrote into the old
    report (between their markers), kept as they were."""
    old = path.read_text() if path.exists() else ""
    kept = ""
    for name in ("backfill", "fleet"):
        start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
        if start in old and end in old:
            kept += "\n" + old[old.index(start) : old.index(end) + len(end)] + "\n"
    return kept


def profile_section(ctx: dict[str, Any]) -> list[str]:
    prof = ctx["profile"]
    floors = ctx["floors"]
    out: list[str] = []
    for label, key in (("`alley --help`", "help"), ("`alley status`", "status")):
        imp = prof.get(f"imports_{key}")
        split = prof.get(f"split_{key}")
        if not imp:
            continue
        tops = ", ".join(f"{name} {ms:.0f} ms" for name, ms in imp["top"])
        out.append(
            f"- {label}: `python -X importtime` counts {imp['total_ms']:.0f} ms of imports "
            f"(heaviest top-level: {tops}); pymongo/mongoengine imported: "
            f"{'yes' if imp['pymongo'] else 'no'}."
        )
        if split:
            out.append(
                f"  Wall time splits into {fmt_s(split['main'])} from launch to the end of "
                f"`main()` and {fmt_s(split['shutdown'])} of interpreter shutdown after it."
            )
    ping = prof.get("split_ping")
    if ping:
        out.append(
            f"- The pymongo-ping floor itself: {fmt_s(ping['main'])} to the end of the "
            f"script, {fmt_s(ping['shutdown'])} of interpreter shutdown "
            f"(median wall {cell(floors.get('ping'))})."
        )
    top = max(ctx["ns"])
    low = min(ctx["ns"])
    counts = [
        (f"{OP_TITLES[op]}, N={top}", op, prof.get(f"counts_{op}"))
        for op in ("status", "noop_up", "up", "down")
    ] + [
        (f"{OP_TITLES[op]}, N={low}", op, prof.get(f"counts_{op}_small"))
        for op in ("status", "noop_up")
    ]
    if any(found for _, _, found in counts):
        out += [
            "",
            "Server commands sent by one alley run (PyMongo command listener):",
            "",
            "| operation | commands | per migration | by name |",
            "| --- | --- | --- | --- |",
        ]
        for title, op, found in counts:
            if not found:
                continue
            total = sum(found.values())
            per = f"{total / top:.1f}" if op in ("up", "down") else "—"
            names = ", ".join(f"{k} {v}" for k, v in sorted(found.items(), key=lambda kv: -kv[1]))
            out.append(f"| {title} | {total} | {per} | {names} |")
    for key, label in (("status", "applied"), ("up", "pending")):
        text = prof.get(f"pyinstrument_{key}")
        if not text:
            continue
        body = text.strip().splitlines()
        out += [
            "",
            f"<details><summary>pyinstrument: <code>alley {key}</code> with {top} {label}"
            "</summary>",
            "",
            "```",
            *body[:60],
            "```",
            "",
            "</details>",
        ]
    notes = ROOT / "bench" / "FINDINGS.md"
    if notes.exists():
        out += ["", notes.read_text().strip()]
    return out


# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="N = 10, 100 and fewer repeats")
    parser.add_argument("--n", type=int, nargs="+", help="the N values (default 10 100 1000)")
    parser.add_argument("--docs", type=Path, default=DOCS, help="where to write the report")
    parser.add_argument("--cache", type=Path, default=CACHE_DIR, help="results and profiles")
    args = parser.parse_args(argv)

    ns = args.n or ([10, 100] if args.quick else [10, 100, 1000])
    reps = (
        {"startup": 5, "status": 3, "status_big": 3, "updown": 2, "updown_big": 1}
        if args.quick
        else {"startup": 10, "status": 7, "status_big": 5, "updown": 5, "updown_big": 2}
    )
    plotting = ensure_plotting()

    from alley.testing import provide_server

    started = time.perf_counter()
    tools = all_tools()  # the peers: in alley.testing.peers' cache
    usable = [t for t in tools if not t.unavailable]
    for tool in tools:
        print(f"bench: {tool.name} {tool.unavailable or tool.version}", file=sys.stderr)

    def log(line: str) -> None:
        print(f"bench: {line}", file=sys.stderr, flush=True)

    with provide_server() as server, tempfile.TemporaryDirectory(prefix="alley-bench-") as tmp:
        import pymongo

        log(f"server: {server.description}")
        client = pymongo.MongoClient(server.uri)
        ping_uri = server.uri_for_database("bench_ping")
        floors = {
            "python": measure([sys.executable, "-c", "pass"], reps["startup"]),
            "ping": measure(
                [
                    sys.executable,
                    "-c",
                    "import sys, pymongo; pymongo.MongoClient(sys.argv[1]).admin.command('ping')",
                    ping_uri,
                ],
                reps["startup"],
            ),
            "node": measure(["node", "-e", "0"], reps["startup"])
            if shutil.which("node")
            else {"na": "no node"},
        }
        log("floors: " + ", ".join(f"{k} {cell(v)}" for k, v in floors.items()))
        startup = {t.name: measure(t.help_command(), reps["startup"]) for t in usable}
        startup.update({t.name: {"na": t.unavailable} for t in tools if t.unavailable})
        log("--help: " + ", ".join(f"{k} {cell(v)}" for k, v in startup.items()))

        results: dict[str, dict[str, dict[int, Result]]] = {
            t.name: {op: {} for op in OPERATIONS} for t in tools
        }
        for n in ns:
            for tool in tools:
                if tool.unavailable:
                    for op in OPERATIONS:
                        results[tool.name][op][n] = {"na": tool.unavailable}
                    continue
                t0 = time.perf_counter()
                updown = reps["updown"] if n < 1000 else reps["updown_big"]
                per_op = measure_workspace(
                    tool, n, server, client, Path(tmp), {**reps, "updown": updown}
                )
                for op, result in per_op.items():
                    results[tool.name][op][n] = result
                log(
                    f"N={n} {tool.name} ({time.perf_counter() - t0:.0f}s): "
                    + ", ".join(f"{op} {cell(per_op.get(op))}" for op in OPERATIONS)
                )

        # Profile alley where the targets are judged.
        top = max(ns)
        prof_root = Path(tmp) / "profile"
        Alley = next(t for t in tools if t.name == "alley")
        Alley.write_migrations(prof_root, top)
        prof_db = f"bench_profile_{top}"
        client.drop_database(prof_db)
        prof_uri = server.uri_for_database(prof_db)
        profile: dict[str, Any] = {}
        base_args = ["--url", prof_uri, str(prof_root)]
        status_args = [*base_args, "status"]
        try:
            log(f"profiling alley at N={top}")
            profile["counts_up"] = command_counts([*base_args, "up"])
            profile["counts_status"] = command_counts(status_args)
            profile["counts_noop_up"] = command_counts([*base_args, "up"])
            profile["imports_help"] = import_profile(["--help"])
            profile["imports_status"] = import_profile(status_args)
            profile["split_help"] = in_process_split(["--help"], reps["status"])
            profile["split_status"] = in_process_split(status_args, reps["status"])
            profile["split_ping"] = ping_split(ping_uri, reps["status"])
            profile["pyinstrument_status"] = pyinstrument_profile(
                status_args, args.cache / f"pyinstrument-status-{top}.txt"
            )
            profile["counts_down"] = command_counts([*base_args, "down", "1"])
            # The same counts at the smallest N: "flat in N" means the same round trips.
            small_root = Path(tmp) / "profile-small"
            Alley.write_migrations(small_root, min(ns))
            client.drop_database(f"{prof_db}_small")
            small_args = ["--url", server.uri_for_database(f"{prof_db}_small"), str(small_root)]
            command_counts([*small_args, "up"])
            profile["counts_status_small"] = command_counts([*small_args, "status"])
            profile["counts_noop_up_small"] = command_counts([*small_args, "up"])
            client.drop_database(f"{prof_db}_small")
            profile["pyinstrument_up"] = pyinstrument_profile(
                [*base_args, "up"], args.cache / f"pyinstrument-up-{top}.txt"
            )
        except Exception as error:
            log(f"profiling failed: {error}")
        client.drop_database(prof_db)
        client.close()

        ctx = {
            "date": dt.date.today().isoformat(),
            "server": server,
            "tools": tools,
            "ns": ns,
            "reps": reps,
            "quick": args.quick,
            "results": results,
            "startup": startup,
            "floors": floors,
            "profile": profile,
        }
        ctx["targets"] = targets(results, startup, floors, ns, profile)

    args.docs.mkdir(parents=True, exist_ok=True)
    if plotting:
        write_plot(results, ns, floors, args.docs / "benchmarks.png")
    write_markdown(ctx, args.docs / "benchmarks.md")
    raw = args.cache / "results.json"
    raw.write_text(
        json.dumps(
            {k: ctx[k] for k in ("date", "ns", "reps", "results", "startup", "floors", "profile")},
            default=str,
            indent=1,
        )
    )

    print_summary(ctx, time.perf_counter() - started, args.docs)
    return 0


def print_summary(ctx: dict[str, Any], seconds: float, docs: Path) -> None:
    top = max(ctx["ns"])
    floors, startup, results = ctx["floors"], ctx["startup"], ctx["results"]
    print(f"\nalley benchmarks ({ctx['server'].description}, {os.cpu_count()} cores)")
    print(f"  floors: python -c pass {cell(floors['python'])}; pymongo ping {cell(floors['ping'])}")
    for name in results:
        parts = [f"--help {cell(startup.get(name))}"]
        parts += [f"{op} {cell(results[name][op].get(top))}" for op in ("status", "up", "down")]
        print(f"  {name:<19} " + "; ".join(parts).replace("<sub>", "(").replace("</sub>", ")"))
    print("  targets:")
    for name, value, _limit, met in ctx["targets"]:
        verdict = "n/a" if met is None else ("met" if met else "MISSED")
        shown = "—" if value is None else f"{value:.2f}x"
        print(f"    {verdict:<6} {shown:>7}  {name.replace('`', '')}")
    print(f"  wrote {docs / 'benchmarks.md'} and benchmarks.png in {seconds:.0f}s")


if __name__ == "__main__":
    sys.exit(main())
