"""The `recbench` command: one module per subcommand, each a thin layer over a plain function."""

import sys

import click
import typer
from rich.console import Console

from ..errors import RecbenchError
from . import checkpoint, compare, config, datasets, leaderboard, plugins, records, reproduce, run, site, tokenize, tune

app = typer.Typer(
    name="recbench",
    help="Benchmark generative recommenders under one fixed protocol.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)
app.command("plugins")(plugins.command)
app.command("config")(config.command)
app.add_typer(datasets.app, name="datasets")
app.command("run", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})(run.command)
app.command("leaderboard")(leaderboard.command)
app.command("tokenize", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})(tokenize.command)
app.command("compare")(compare.command)
app.command("reproduce")(reproduce.command)
app.command("site")(site.command)
app.command("tune", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})(tune.command)
app.add_typer(checkpoint.app, name="checkpoint")
app.add_typer(records.app, name="records")

err = Console(stderr=True)


def parser_exceptions() -> tuple[tuple[type, ...], tuple[type, ...]]:
    """(usage errors, aborts) of the command-line parser. Recent typer versions raise their own
    copies of click's exceptions, older ones click's: catch both, whichever typer is installed."""
    usage, abort = [click.ClickException], [click.exceptions.Abort]
    try:
        from typer._click.exceptions import ClickException
        from typer.exceptions import Abort
    except ImportError:
        pass
    else:
        usage.append(ClickException)
        abort.append(Abort)
    return tuple(usage), tuple(abort)


def main() -> None:
    """Entry point: recbench's own errors become a message and an exit code (2 usage, 1 failed run)."""
    usage, abort = parser_exceptions()
    try:
        code = app(standalone_mode=False)
    except usage as exc:  # a malformed command line: typer's message, exit 2
        exc.show()
        sys.exit(exc.exit_code)
    except abort:  # Ctrl-C or end of input at a prompt
        err.print("Aborted.")
        sys.exit(1)
    except RecbenchError as exc:
        err.print(f"[bold red]Error:[/] {exc}", markup=True, highlight=False, soft_wrap=True)
        sys.exit(exc.exit_code)
    sys.exit(code if isinstance(code, int) else 0)
