"""`recbench checkpoint convert OLD.pt [NEW.pt]`: rewrite a checkpoint of an earlier recbench
version, which only full unpickling reads, as tensors and plain data (recbench.checkpoints).

Full unpickling runs any code a file carries, so recbench never does it on its own: this command
does it for one file, on request, and says so. Convert only checkpoints from a source you trust."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

app = typer.Typer(help="Checkpoint files (a run's best.pt and last.pt).", no_args_is_help=True)
console = Console(soft_wrap=True, highlight=False)


@app.command("convert")
def convert(
    old: Path = typer.Argument(..., help="A best.pt or last.pt written by an earlier recbench version."),
    new: Optional[Path] = typer.Argument(None, help="Where to write the converted checkpoint (default: in place, the original kept as OLD.orig)."),
) -> None:
    """Rewrite a checkpoint of an earlier recbench version as tensors and plain data.

    Earlier checkpoints pickled numpy's random state, which only full unpickling reads; `recbench
    run` reads the converted file without running code. This reads OLD with full unpickling, which
    runs any code the file carries: convert only checkpoints from a source you trust."""
    from ..checkpoints import convert as convert_file

    convert_file(old, new, log=console.print)
