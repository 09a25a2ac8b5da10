"""The ``alley`` command: parse, resolve settings, call the API, render. No logic here.

    alley [CONNECTION OPTIONS] [PATH] COMMAND [ARGS] [OPTIONS]

Exit codes are set in exactly one place, :func:`main`.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import traceback
import warnings
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from alley.errors import AlleyError, ExitCode

EXIT_CODES_HELP = (
    "Exit codes: 0 ok · 1 migration failed · 2 usage · 3 configuration/discovery · "
    "4 connection/authentication · 5 lock busy · 6 integrity (drift, out of order; "
    "check: the models differ; test: a migration irreversible or not repeatable) · "
    "7 pending work (status --check) · 8 plugin error · "
    "9 a step finished after the "
    "lock was lost · 70 internal error · 130 interrupted · 143 terminated (SIGTERM)."
)


class AlleyGroup(TyperGroup):
    """Accepts an optional PATH between the connection options and the command.

    Click cannot parse an optional positional before a subcommand, so the first bare
    word that is not a command name is rewritten to ``--path WORD`` before parsing.
    ``-v/--verbose`` given after the command is moved before it.
    """

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        args = list(args)
        verbose = [a for a in args if a in ("-v", "--verbose")]
        args = verbose + [a for a in args if a not in ("-v", "--verbose")]
        takes_value = {
            name
            for param in self.params
            if not getattr(param, "is_flag", False) and not getattr(param, "count", False)
            for name in getattr(param, "opts", [])
        }
        index = 0
        while index < len(args):
            word = args[index]
            if word == "--":
                break
            if word.startswith("-") and word != "-":
                index += 2 if word in takes_value else 1
                continue
            # A bare word followed by more words is PATH; alone, it is a (mistyped) command,
            # except while completing: then the word being completed is not in args.
            if word not in self.commands and (index + 1 < len(args) or ctx.resilient_parsing):
                args[index : index + 1] = ["--path", word]
            break
        return super().parse_args(ctx, args)

    def _main_shell_completion(
        self, ctx_args: Any, prog_name: str, complete_var: str | None = None
    ) -> None:
        """Answer the shell's completion request (``_ALLEY_COMPLETE`` set), then exit."""
        instruction = os.environ.get(complete_var or COMPLETE_VAR)
        if instruction:
            sys.exit(_shell_complete(self, ctx_args, prog_name, instruction))


COMPLETE_VAR = "_ALLEY_COMPLETE"
SHELLS = ("bash", "zsh", "fish", "powershell")


def _completer(shell: str, command: Any, ctx_args: Any, prog_name: str) -> Any:
    """typer's completion class for ``shell`` (the one its scripts talk to)."""
    from typer._click.shell_completion import get_completion_class
    from typer._completion_classes import completion_init

    completion_init()
    found = get_completion_class(shell)
    if found is None:
        return None
    return found(command, dict(ctx_args), prog_name, COMPLETE_VAR)


def _shell_complete(command: Any, ctx_args: Any, prog_name: str, instruction: str) -> int:
    """``_ALLEY_COMPLETE=bash_complete`` (click's order) or ``complete_bash`` (typer's,
    what ``alley completion bash`` emits); ``source`` prints the script."""
    first, _, second = instruction.partition("_")
    shell, action = (first, second) if first in SHELLS else (second, first)
    completer = _completer(shell, command, ctx_args, prog_name) if shell in SHELLS else None
    if completer is None or action not in ("complete", "source"):
        sys.stderr.write(f"alley: error: invalid {COMPLETE_VAR} {instruction!r}\n")
        return int(ExitCode.USAGE)
    typer.echo(completer.complete() if action == "complete" else completer.source())
    return 0


app = typer.Typer(
    cls=AlleyGroup,
    name="alley",
    help="Create, run and roll back MongoDB migrations written as plain Python files.",
    epilog=EXIT_CODES_HELP,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    options_metavar="[CONNECTION OPTIONS] [PATH]",
)

JsonOption = Annotated[bool, typer.Option("--json", help="Print the result as JSON.")]
ModelsOption = Annotated[
    str | None,
    typer.Option(
        "--models",
        help="Modules of the MongoEngine models, comma-separated (default: models setting).",
        metavar="MODULES",
    ),
]
VERBOSE = "alley.verbose"
FAIL_FAST = "alley.fail_fast"


def _print_version(value: bool) -> None:
    if value:
        from alley import __version__

        typer.echo(f"alley {__version__}")
        raise typer.Exit()


def _say_where(ctx: typer.Context) -> None:
    """With ``--verbose``, where a command that touches the database looks (stderr).
    Over many databases, a command that works on one refuses (exit 2)."""
    if ctx.obj.many_databases:
        from alley.errors import UsageError

        raise UsageError(
            f"'{ctx.command.name}' works on one database, and databases are set "
            f"({', '.join(ctx.obj.databases)})",
            hint="give -db NAME (it wins over databases in [tool.alley] or the environment)",
        )
    if ctx.meta.get(VERBOSE):
        from alley import render

        sys.stderr.write(render.location_line(ctx.obj) + "\n")
        sys.stderr.flush()


@app.callback()
def connection_options(
    ctx: typer.Context,
    database: Annotated[
        str | None, typer.Option("-db", "--database", metavar="NAME", help="Database name.")
    ] = None,
    username: Annotated[
        str | None, typer.Option("-u", "--username", metavar="USER", help="User name.")
    ] = None,
    password: Annotated[
        str | None,
        typer.Option(
            "-w", "--password", metavar="PASSWORD", help="Password (prefer ALLEY_PASSWORD)."
        ),
    ] = None,
    auth: Annotated[
        str | None, typer.Option("-a", "--auth", metavar="DB", help="Authentication database.")
    ] = None,
    host: Annotated[
        str | None, typer.Option("-h", "--host", metavar="HOST", help="Server host.")
    ] = None,
    port: Annotated[  # numbers are strings here: settings validate them (exit 3)
        str | None, typer.Option("-p", "--port", metavar="PORT", help="Server port.")
    ] = None,
    url: Annotated[
        str | None, typer.Option("--url", metavar="URL", help="mongodb:// or mongodb+srv:// URL.")
    ] = None,
    path: Annotated[
        str | None,
        typer.Option(
            "--path",
            metavar="PATH",
            help="The folder that contains migrations/ (or give it as PATH).",
        ),
    ] = None,
    timeout: Annotated[
        str | None,
        typer.Option("--timeout", metavar="SECONDS", help="Seconds to wait for the server [5]."),
    ] = None,
    lease: Annotated[
        str | None,
        typer.Option("--lease", metavar="SECONDS", help="Lock lease, renewed while running [30]."),
    ] = None,
    lock_timeout: Annotated[
        str | None,
        typer.Option(
            "--lock-timeout", metavar="SECONDS", help="How long to wait for a busy lock [60]."
        ),
    ] = None,
    databases: Annotated[
        str | None,
        typer.Option(
            "--databases",
            metavar="LIST",
            help="Run status/up/down/verify/check over these databases: names and patterns "
            "(tenant_*), comma-separated.",
        ),
    ] = None,
    jobs: Annotated[
        str | None,
        typer.Option("--jobs", metavar="N", help="Databases worked on at once [4]."),
    ] = None,
    fail_fast: Annotated[
        bool,
        typer.Option("--fail-fast", help="Over many databases: start no more after one fails."),
    ] = False,
    option: Annotated[
        list[str] | None,
        typer.Option(
            "-o",
            "--option",
            metavar="KEY=VALUE",
            help="A setting for plugins, over [tool.alley] (repeatable).",
        ),
    ] = None,
    disable_plugin: Annotated[
        list[str] | None,
        typer.Option(
            "--disable-plugin", metavar="NAME", help="Do not load this plugin (repeatable)."
        ),
    ] = None,
    load_plugin: Annotated[
        list[str] | None,
        typer.Option(
            "--load-plugin", metavar="NAME", help="Load only these installed plugins (repeatable)."
        ),
    ] = None,
    only_default_plugins: Annotated[
        bool,
        typer.Option("--only-default-plugins", help="Load no installed plugin, only the defaults."),
    ] = False,
    verbose: Annotated[
        bool, typer.Option("-v", "--verbose", help="Show tracebacks of errors.")
    ] = False,
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            is_eager=True,
            callback=_print_version,
            help="Print alley's version and exit.",
        ),
    ] = False,
) -> None:
    """Connection options come first, then PATH (optional), then the command."""
    from alley.settings import load_settings

    ctx.meta[VERBOSE] = verbose or bool(os.environ.get("ALLEY_VERBOSE"))
    ctx.meta[FAIL_FAST] = fail_fast
    ctx.obj = load_settings(
        {
            "database": database,
            "username": username,
            "password": password,
            "auth_source": auth,
            "host": host,
            "port": port,
            "url": url,
            "path": path,
            "timeout": timeout,
            "lease": lease,
            "lock_timeout": lock_timeout,
            "databases": databases,
            "jobs": jobs,
            "disable_plugins": tuple(disable_plugin or ()),
            "options": tuple(option or ()),
            "load_plugins": ()
            if only_default_plugins
            else (tuple(load_plugin) if load_plugin else None),
        }
    )


@app.command(options_metavar="[OPTIONS]")
def create(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="What it does, e.g. add_users.", metavar="NAME")],
    autogenerate: Annotated[
        bool,
        typer.Option(
            "--autogenerate",
            help="Write the index changes the models need (connects; docs/models.md).",
        ),
    ] = False,
    models: ModelsOption = None,
    drop: Annotated[
        bool,
        typer.Option(
            "--drop",
            help="With --autogenerate: drop indexes no model declares (else commented out).",
        ),
    ] = False,
) -> None:
    """Write migrations/<next id>_<name>.py with empty up(db) and down(db)."""
    from alley import api, render
    from alley.errors import UsageError

    if not autogenerate:
        if models is not None or drop:
            option = "--models" if models is not None else "--drop"
            raise UsageError(f"{option} goes with --autogenerate")
        result = api.create(ctx.obj, name)
        typer.echo(f"created {result.location}")
        return
    _say_where(ctx)
    report = api.autogenerate(ctx.obj, name, drop=drop, models=models)
    render.notes(report.notes)
    if report.created is None:
        from alley.autogenerate import AGREE

        for change in report.kept:
            typer.echo(change.describe())
        kept = len(report.kept)
        typer.echo(
            f"nothing to do: {AGREE}"
            if not kept
            else f"nothing to do: {kept} index{'es' * (kept != 1)} no model declares "
            "kept (--drop writes a migration that drops them)"
        )
        return
    for change in report.changes:
        typer.echo(change.describe())
    typer.echo(f"created {report.created.location}")


@app.command("check", options_metavar="[OPTIONS]")
def check_models(
    ctx: typer.Context, models: ModelsOption = None, as_json: JsonOption = False
) -> None:
    """Compare the models' indexes with the database's: exit 6 when they disagree."""
    from alley import api, render
    from alley.autogenerate import AGREE

    if ctx.obj.many_databases:
        _fleet(ctx, "check", as_json, models=models)
        return
    _say_where(ctx)
    report = api.check(ctx.obj, models=models)
    render.notes(report.notes)
    if as_json:
        render.print_json(report.as_dict())
    else:
        for change in report.changes:
            typer.echo(change.describe())
        if report.pending:
            n = len(report.pending)
            typer.echo(
                f"{n} migration{'s' * (n != 1)} pending ({', '.join(report.pending)}): "
                "'alley up' may change the indexes"
            )
        n = len(report.changes)
        typer.echo(f"ok: {AGREE}" if report.ok else f"{n} difference{'s' * (n != 1)}")
    if not report.ok:
        raise typer.Exit(ExitCode.INTEGRITY)


@app.command(options_metavar="[OPTIONS]")
def lint(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """Check migration files without a server: FILE:LINE: RULE message. Exit 3 on errors."""
    from alley import api, render

    report = api.lint(ctx.obj)
    render.notes(report.notes)
    if as_json:
        render.print_json(report.as_dict())
    else:
        for finding in report.findings:
            typer.echo(str(finding))
        errors, warnings = len(report.errors), len(report.warnings)
        typer.echo(
            f"{report.files} file{'s' * (report.files != 1)} checked: "
            f"{errors} error{'s' * (errors != 1)}, {warnings} warning{'s' * (warnings != 1)}"
        )
    if report.errors:
        raise typer.Exit(ExitCode.CONFIG)


NoLintOption = Annotated[
    bool,
    typer.Option("--no-lint", help="Skip the error-level lint rules of the pre-flight."),
]


def _without_lint(ctx: typer.Context, no_lint: bool) -> None:
    """``--no-lint``: the settings say ``lint = false`` for this command."""
    if no_lint:
        import dataclasses

        ctx.obj = dataclasses.replace(ctx.obj, options={**ctx.obj.options, "lint": False})


@app.command(options_metavar="[OPTIONS]")
def status(
    ctx: typer.Context,
    check: Annotated[
        bool, typer.Option("--check", help="Exit 7 when migrations are pending (a CI gate).")
    ] = False,
    as_json: JsonOption = False,
    no_lint: NoLintOption = False,
) -> None:
    """Show applied migrations (with dates), pending ones, and where it looked."""
    from alley import api, render

    _without_lint(ctx, no_lint)

    if ctx.obj.many_databases:
        _fleet(ctx, "status", as_json, check=check)
        return
    _say_where(ctx)
    report = api.status(ctx.obj, check=check)
    render.notes(report.notes)
    if as_json:
        render.print_json(render.status_data(report, ctx.obj))
    else:
        render.status_report(report, header=render.location_line(ctx.obj, report.statuses))
    if check and report.pending:
        raise typer.Exit(ExitCode.PENDING)


RetryOption = Annotated[
    bool,
    typer.Option("--retry", help="Run again a step that failed after writing (check it first)."),
]

PlanOption = Annotated[
    bool,
    typer.Option("--plan", help="Show what would run, and the lock; write nothing. Exit 7 if any."),
]

EventsOption = Annotated[
    str | None,
    typer.Option(
        "--events",
        metavar="FILE",
        help="Append progress events to FILE as JSON lines ('-': stderr).",
    ),
]


@app.command(options_metavar="[OPTIONS]")
def up(
    ctx: typer.Context,
    migration_id: Annotated[
        str | None,
        typer.Argument(help="Apply up to and including this id [all].", metavar="MIGRATION_ID"),
    ] = None,
    fake: Annotated[bool, typer.Option("--fake", help="Record without executing.")] = False,
    plan: PlanOption = False,
    allow_out_of_order: Annotated[
        bool,
        typer.Option("--allow-out-of-order", help="Apply pending ids lower than applied ones."),
    ] = False,
    allow_drift: Annotated[
        bool, typer.Option("--allow-drift", help="Run although applied files changed.")
    ] = False,
    retry: RetryOption = False,
    as_json: JsonOption = False,
    events: EventsOption = None,
    no_lint: NoLintOption = False,
) -> None:
    """Run pending migrations in order."""
    from alley import api

    _without_lint(ctx, no_lint)

    if ctx.obj.many_databases:
        options = {"allow_out_of_order": allow_out_of_order, "allow_drift": allow_drift}
        options |= {"retry": retry, "fake": fake}
        command = "plan_up" if plan else "up"
        _fleet(ctx, command, as_json, events, target=migration_id, **options)
        return
    _say_where(ctx)
    if plan:
        planned = api.plan_up(
            ctx.obj,
            migration_id,
            allow_out_of_order=allow_out_of_order,
            allow_drift=allow_drift,
            retry=retry,
            fake=fake,
        )
        _show_plan(planned, as_json)
        return
    report = _run(
        lambda **callbacks: api.up(
            ctx.obj,
            migration_id,
            fake=fake,
            allow_out_of_order=allow_out_of_order,
            allow_drift=allow_drift,
            retry=retry,
            **callbacks,
        ),
        as_json,
        events,
    )
    _show_run(report, as_json, migration_id)


@app.command(options_metavar="[OPTIONS]")
def down(
    ctx: typer.Context,
    migration_id: Annotated[
        str | None,
        typer.Argument(
            help="Roll back down to and including this id (the same as --to).",
            metavar="MIGRATION_ID",
        ),
    ] = None,
    to: Annotated[
        str | None,
        typer.Option("--to", metavar="ID", help="Roll back down to and including this id."),
    ] = None,
    steps: Annotated[
        int | None,
        typer.Option("--steps", metavar="N", help="Roll back the last N applied migrations."),
    ] = None,
    fake: Annotated[bool, typer.Option("--fake", help="Remove records without executing.")] = False,
    plan: PlanOption = False,
    retry: RetryOption = False,
    as_json: JsonOption = False,
    events: EventsOption = None,
) -> None:
    """Roll back the last applied migration only (or down to an id, or the last N).

    Without MIGRATION_ID, --to or --steps, only the last applied migration is rolled
    back. Newest first, in the order migrations apply.
    """
    from alley import api
    from alley.errors import UsageError

    if sum(given is not None for given in (migration_id, to, steps)) > 1:
        raise UsageError(
            "give one of MIGRATION_ID, --to ID or --steps N",
            hint="MIGRATION_ID and --to ID mean the same",
        )
    if steps is not None and steps < 1:
        raise UsageError(f"invalid --steps {steps}", hint="give a number of migrations, 1 or more")
    target = migration_id if migration_id is not None else to
    if ctx.obj.many_databases:
        command = "plan_down" if plan else "down"
        _fleet(ctx, command, as_json, events, target=target, steps=steps, fake=fake, retry=retry)
        return
    _say_where(ctx)
    if plan:
        planned = api.plan_down(ctx.obj, target, steps=steps, retry=retry, fake=fake)
        _show_plan(planned, as_json)
        return
    report = _run(
        lambda **callbacks: api.down(
            ctx.obj, target, steps=steps, fake=fake, retry=retry, **callbacks
        ),
        as_json,
        events,
    )
    _show_run(report, as_json)


@app.command(options_metavar="[OPTIONS]")
def redo(
    ctx: typer.Context,
    fake: Annotated[
        bool, typer.Option("--fake", help="Remove and re-add the record without executing.")
    ] = False,
    plan: PlanOption = False,
    retry: RetryOption = False,
    as_json: JsonOption = False,
    events: EventsOption = None,
) -> None:
    """Roll back the last applied migration and apply it again.

    Both steps run in one run, under one lock; --plan shows both.
    """
    from alley import api

    _say_where(ctx)
    if plan:
        _show_plan(api.plan_redo(ctx.obj, retry=retry, fake=fake), as_json)
        return
    report = _run(
        lambda **callbacks: api.redo(ctx.obj, fake=fake, retry=retry, **callbacks),
        as_json,
        events,
    )
    _show_run(report, as_json)


def _run(call: Any, as_json: bool, events_to: str | None = None) -> Any:
    """Run ``up``/``down``/``redo`` with progress lines and bars (none with ``--json``)
    and, with ``--events FILE``, JSON events. If an error stops it once a step
    started, the steps that ran are still shown: as JSON with ``--json``, else their
    lines were printed as they ran. ``main`` then prints the error and exits with its
    code."""
    from alley import api, render

    sink = _open_events(events_to)  # before anything runs: a bad FILE runs nothing
    events = render.Events(sink) if sink is not None else None
    progress = None if as_json else render.Progress()
    followers: list[Any] = [f for f in (events, progress) if f is not None]

    def on_start(entry: Any) -> None:
        for follower in followers:
            follower.start(entry)

    def on_step(result: Any) -> None:
        for follower in followers:
            follower.step(result)

    def on_progress(event: Any) -> None:
        for follower in followers:
            follower.batch(event)

    try:
        return call(
            on_step=on_step, on_start=on_start, on_progress=on_progress, on_wait=render.waiting
        )
    except BaseException as error:
        if progress is not None:
            progress.stop()
        if events is not None:
            events.failed(error)
        failed = api.failed_run(error) if isinstance(error, AlleyError) else None
        if failed is not None:
            render.notes(failed.notes)
            if as_json:
                render.print_json(render.run_data(failed, failed))
        raise
    finally:
        if progress is not None:
            progress.stop()
        if sink is not None and sink is not sys.stderr:
            sink.close()


def _fleet(
    ctx: typer.Context, command: str, as_json: bool, events: str | None = None, **arguments: Any
) -> None:
    """A command over many databases: a line per database as it ends (none with
    ``--json``), then the summary; exit with the worst database's code."""
    from alley import fleet, render
    from alley.errors import UsageError

    if events is not None:
        raise UsageError("--events works on one database", hint="give -db NAME")

    if ctx.meta.get(VERBOSE):
        sys.stderr.write(render.location_line(ctx.obj) + "\n")
    report = fleet.run(
        ctx.obj,
        command,
        fail_fast=bool(ctx.meta.get(FAIL_FAST)),
        on_outcome=None if as_json else _print_outcome,
        on_stop=_say_stopping,
        **arguments,
    )
    render.notes(report.notes)
    if as_json:
        render.print_json(render.fleet_data(report, ctx.obj))
    else:
        render.fleet_summary(report)
    if report.stopped is not None:
        what = "terminated (SIGTERM)" if report.stopped == ExitCode.TERMINATED else "interrupted"
        sys.stderr.write(f"alley: error: {what}: no database started after it\n")
    if report.exit_code:
        raise typer.Exit(report.exit_code)


_print_lock = threading.Lock()


def _say_stopping(running: int) -> None:
    sys.stderr.write(
        f"alley: stopping: no database starts now; waiting for the {running} running\n"
    )
    sys.stderr.flush()


def _print_outcome(outcome: Any) -> None:
    from alley import render

    with _print_lock:  # databases end in several threads
        render.fleet_line(outcome)


def _open_events(path: str | None) -> Any:
    """The stream ``--events`` names: stderr for ``-``, else FILE opened for appending
    (a FILE that cannot be opened is a configuration error, exit 3)."""
    from alley.errors import ConfigError

    if path is None:
        return None
    if path == "-":
        return sys.stderr
    try:
        return open(path, "a", encoding="utf-8")
    except OSError as error:
        raise ConfigError(f"cannot open --events file {path}: {error.strerror or error}") from error


def _show_run(report: Any, as_json: bool, target: str | None = None) -> None:
    from alley import render

    render.notes(report.notes)
    if as_json:
        render.print_json(render.run_data(report))
    else:
        render.run_summary(report, target=target)


def _show_plan(planned: Any, as_json: bool) -> None:
    from alley import render

    render.notes(planned.notes)
    if as_json:
        render.print_json(render.plan_data(planned))
    else:
        render.plan(planned)
    if planned.plan:
        raise typer.Exit(ExitCode.PENDING)


@app.command(options_metavar="[OPTIONS]")
def mark(
    ctx: typer.Context,
    migration_id: Annotated[str, typer.Argument(help="The migration.", metavar="MIGRATION_ID")],
    applied: Annotated[
        bool, typer.Option("--applied", help="Record it as applied (accepts an edit).")
    ] = False,
    pending: Annotated[bool, typer.Option("--pending", help="Remove its record.")] = False,
) -> None:
    """Decide a migration's state by hand (after an interruption, or to accept an edit)."""
    from alley import api, render
    from alley.errors import UsageError

    if applied == pending:
        raise UsageError("give exactly one of --applied or --pending")
    _say_where(ctx)
    report = api.mark(ctx.obj, migration_id, applied=applied, on_wait=render.waiting)
    typer.echo(f"marked {report.filename} {report.state.value}")


@app.command("import-history", options_metavar="[OPTIONS]")
def import_history(
    ctx: typer.Context,
    tool: Annotated[
        str | None,
        typer.Option(
            "--from",
            metavar="TOOL",
            help="migrate-mongo, pymongo-migrate, mongodb-migrations or "
            "flask-mongoengine-migrations (or a plugin's).",
        ),
    ] = None,
    collection: Annotated[
        str | None,
        typer.Option("--collection", metavar="NAME", help="The tool's collection, if renamed."),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show the mapping; write nothing.")
    ] = False,
    skip_unmatched: Annotated[
        bool,
        typer.Option("--skip-unmatched", help="Import what maps; list the rest (else exit 6)."),
    ] = False,
    undo: Annotated[
        bool, typer.Option("--undo", help="Remove the records of the newest import.")
    ] = False,
    import_id: Annotated[
        str | None,
        typer.Option("--import-id", metavar="ID", help="With --undo: this import's."),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Record as applied what another tool recorded (its history is only read).

    Exit 6 when an entry maps to no alley migration (nothing written).
    """
    from alley import api, render
    from alley.errors import UsageError
    from alley.import_history import ImportMismatch

    if undo == (tool is not None):
        raise UsageError("give exactly one of --from TOOL or --undo")
    if import_id is not None and not undo:
        raise UsageError("--import-id goes with --undo")
    _say_where(ctx)
    if undo:
        undone = api.undo_import(ctx.obj, import_id, on_wait=render.waiting)
        render.notes(undone.notes)
        if as_json:
            render.print_json(undone.as_dict())
        elif undone.import_id is None:
            typer.echo("nothing to undo: no imported records")
        else:
            for filename in undone.removed:
                typer.echo(f"removed  {filename}")
            typer.echo(
                f"undid import {undone.import_id} ({undone.tool}): {len(undone.removed)} removed"
            )
        return
    assert tool is not None
    try:
        report = api.import_history(
            ctx.obj,
            tool,
            collection=collection,
            dry_run=dry_run,
            skip_unmatched=skip_unmatched,
            on_wait=render.waiting,
        )
    except ImportMismatch as error:
        if as_json:
            render.print_json({**error.report.as_dict(), "error": str(error)})
        for line in error.report.problems:
            sys.stderr.write(f"alley: {line.state}: {line.key}: {line.reason}\n")
        raise
    render.notes(report.notes)
    if as_json:
        render.print_json(report.as_dict())
    else:
        render.import_report(report)


@app.command(options_metavar="[OPTIONS]")
def unlock(
    ctx: typer.Context,
    force: Annotated[
        bool, typer.Option("--force", help="Release even a live lease (its run stops).")
    ] = False,
) -> None:
    """Show who holds the lock, and release it if its run is dead."""
    from alley import api
    from alley.lease import describe_lock

    _say_where(ctx)
    report = api.unlock(ctx.obj, force=force)
    if report.before is None:
        typer.echo("the lock was never taken")
    elif not report.released:
        typer.echo(f"the lock is {describe_lock(report.before)}")
    else:
        typer.echo(f"released the lock {describe_lock(report.before)}")


@app.command(options_metavar="[OPTIONS]")
def history(
    ctx: typer.Context,
    migration_id: Annotated[
        str | None, typer.Argument(help="Only this migration.", metavar="MIGRATION_ID")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Show the run log: every step of every run, oldest first."""
    from alley import api, render

    _say_where(ctx)
    entries = api.history(ctx.obj, migration_id)
    if as_json:
        render.print_json(entries)
    else:
        render.history(entries)


@app.command(options_metavar="[OPTIONS]")
def verify(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """Check history against the files (exit 6) and that pending files load (exit 3)."""
    from alley import api, render

    if ctx.obj.many_databases:
        _fleet(ctx, "verify", as_json)
        return
    _say_where(ctx)
    report = api.verify(ctx.obj)
    render.notes(report.status.notes)
    if as_json:
        render.print_json({"ok": not report.problems, "problems": list(report.problems)})
    else:
        for problem in report.problems:
            typer.echo(problem)
        typer.echo("ok" if not report.problems else f"{len(report.problems)} problem(s)")
    if report.problems:
        raise typer.Exit(ExitCode.INTEGRITY)


@app.command("test", options_metavar="[OPTIONS]")
def rehearse(
    ctx: typer.Context,
    sample: Annotated[
        int,
        typer.Option(
            "--sample",
            metavar="N",
            help="Documents copied per collection, first by _id (0: structure only).",
        ),
    ] = 100,
    keep: Annotated[
        bool, typer.Option("--keep", help="Keep the throwaway database; print its name.")
    ] = False,
    server: Annotated[
        str | None,
        typer.Option(
            "--server",
            metavar="URL",
            help="Make the throwaway database on this other server (the real one is only read).",
        ),
    ] = None,
    no_lint: NoLintOption = False,
    as_json: JsonOption = False,
) -> None:
    """Rehearse pending migrations (up, down, up) on a throwaway copy of the database.

    Exit 6 when one is irreversible or not repeatable, 1 when one raised.
    """
    from alley import api, render

    _without_lint(ctx, no_lint)
    _say_where(ctx)
    on_migration = None if as_json else (lambda item: typer.echo(render.rehearsal_line(item)))
    report = api.rehearse(
        ctx.obj, sample=sample, keep=keep, on_migration=on_migration, server=server
    )
    render.notes(report.notes)
    if as_json:
        render.print_json(report.as_dict())
    else:
        render.rehearsal_summary(report)
    if report.exit_code:
        raise typer.Exit(report.exit_code)


@app.command("plugins", options_metavar="[OPTIONS]")
def list_plugins(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """List the loaded plugins, their versions and the hooks they implement."""
    from alley import api, render

    infos = api.plugins(ctx.obj)
    if as_json:
        render.print_json(infos)
    else:
        render.plugins(infos)


@app.command("completion", options_metavar="[OPTIONS]")
def completion(
    ctx: typer.Context,
    shell: Annotated[str, typer.Argument(help="bash, zsh, fish or powershell.", metavar="SHELL")],
) -> None:
    """Print the shell completion script for bash, zsh, fish or powershell.

    E.g. eval "$(alley completion bash)" in ~/.bashrc.
    """
    from alley.errors import UsageError

    completer = None
    if shell in SHELLS:
        completer = _completer(shell, ctx.find_root().command, {}, "alley")
    if completer is None:
        raise UsageError(
            f"no completion for shell {shell!r}", hint=f"use one of {', '.join(SHELLS)}"
        )
    typer.echo(completer.source())


def render_help() -> str:
    """``alley --help`` as typer renders it for a pipe (78 columns); cached in help.txt."""
    command = typer.main.get_command(app)
    with command.make_context(
        "alley", ["--help"], resilient_parsing=True, terminal_width=78
    ) as ctx:
        return command.get_help(ctx) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``alley`` command; the one place that maps errors to exit codes."""
    args = sys.argv[1:] if argv is None else argv
    verbose = any(a in ("-v", "--verbose") for a in args) or bool(os.environ.get("ALLEY_VERBOSE"))
    warnings.showwarning = _show_warning
    try:
        # Without standalone mode click returns the code of a typer.Exit instead of exiting.
        returned = app(args=args, prog_name="alley", standalone_mode=False)
    except AlleyError as error:
        return _fail(error, error.exit_code, str(error), verbose)
    except KeyboardInterrupt as error:
        return _interrupted(error, verbose)
    except Exception as error:
        return _from_other(error, verbose)
    finally:  # every client the command opened is closed as it ends
        hookcalls = sys.modules.get("alley.hookcalls")  # not loaded: nothing connected
        if hookcalls is not None:
            hookcalls.close_connections()
    if returned == ExitCode.INTERRUPTED:  # typer turns Ctrl-C into Exit(130) itself
        if _sigterm_received.is_set():
            sys.stderr.write("alley: error: terminated (SIGTERM)\n")
            return ExitCode.TERMINATED
        sys.stderr.write("alley: error: interrupted\n")
    return returned if isinstance(returned, int) else ExitCode.OK


def _show_warning(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: Any = None,
    line: str | None = None,
) -> None:
    """A warning raised by a plugin or a migration, on one line of stderr."""
    from alley.errors import AlleyWarning

    text = " ".join(str(message).split())
    if not issubclass(category, AlleyWarning):
        text = f"{category.__name__}: {text} (at {filename}:{lineno})"
    (file or sys.stderr).write(f"alley: warning: {text}\n")


def _from_other(error: Exception, verbose: bool) -> int:
    from typer._click.exceptions import ClickException, NoArgsIsHelpError

    if isinstance(error, typer.Exit):
        return int(error.exit_code)
    if isinstance(error, typer.Abort):  # click's form of a KeyboardInterrupt
        return _interrupted(error, verbose)
    if isinstance(error, NoArgsIsHelpError):
        error.show()
        return ExitCode.USAGE
    if isinstance(error, ClickException):
        message = error.format_message()
        return _fail(error, ExitCode.USAGE, f"{message} (see 'alley --help')", False)
    return _fail(
        error,
        ExitCode.INTERNAL,
        f"internal error: {type(error).__name__}: {error} (run with --verbose for details)",
        verbose,
    )


def _interrupted(error: BaseException, verbose: bool) -> int:
    if _sigterm_received.is_set():
        return _fail(error, ExitCode.TERMINATED, "terminated (SIGTERM)", verbose)
    return _fail(error, ExitCode.INTERRUPTED, "interrupted", verbose)


def _fail(error: BaseException, code: int, message: str, verbose: bool) -> int:
    if verbose:
        traceback.print_exception(error, file=sys.stderr)
    sys.stderr.write(f"alley: error: {message}\n")
    return int(code)


def run() -> None:
    # A deploy system stops a process with SIGTERM: alley then stops as at Ctrl-C (the
    # step in progress logged interrupted, the lock released), not dead with its lock
    # held until the lease runs out. Only the command does this, not a library call.
    signal.signal(signal.SIGTERM, _terminate)
    code = main()
    _skip_pymongo_exit_wait()
    sys.exit(code)


# Set by the SIGTERM handler: typer reports any KeyboardInterrupt as exit 130, so the
# code 143 is decided from this.
_sigterm_received = threading.Event()


def _terminate(signum: int, frame: Any) -> None:
    from alley.errors import Terminated

    _sigterm_received.set()
    raise Terminated


def _skip_pymongo_exit_wait() -> None:
    """Let the process end as soon as alley is done.

    pymongo registers an exit hook that stops its monitor threads one by one, waiting
    for each to wake (about half a second per command, measured in docs/benchmarks.md).
    By now every write was acknowledged and the output is flushed; the threads are
    daemons, so the process can end without that wait. (A private name: if pymongo
    renames it, this quietly does nothing and the command is only slower.)
    """
    monitor = sys.modules.get("pymongo.synchronous.monitor")
    hook = getattr(monitor, "_shutdown_resources", None)
    if hook is not None:
        import atexit

        atexit.unregister(hook)
