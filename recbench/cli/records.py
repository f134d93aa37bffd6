"""`recbench records check DIR...`: every record in the folders loads, is consistent with its own
per-user ranks, is named by its run id, and names the dataset fingerprint of the raw data here
(recbench.results.record_check). Exit 1 lists each refused file and why. `recbench records submit`:
a third party's record joins a records folder, checked the same way and marked as submitted
(recbench.results.submit)."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer
from rich.console import Console

app = typer.Typer(help="Result records: checks of record files, e.g. before they join a leaderboard.", no_args_is_help=True)
console = Console(soft_wrap=True, highlight=False)


@app.command("check")
def check(
    folders: List[Path] = typer.Argument(..., help="Folders of record files (searched at any depth), e.g. leaderboards/records."),
    require_data: bool = typer.Option(False, "--require-data", help="Fail where a dataset's raw files are not here to check its fingerprint."),
) -> None:
    """Check every record in FOLDERS: schema, per-user ranks, metrics recomputed from them, file name, dataset fingerprint."""
    from ..results.record_check import check as check_records

    report = check_records(folders, require_data=require_data)
    for dataset, why in sorted(report.unchecked_data.items()):
        console.print(f"{dataset}: dataset fingerprint not checked: {why}")
    for path, why in report.failures:
        console.print(f"refused: {path}: {why}")
    console.print(f"{report.checked} records checked: " + ("all pass." if report.ok else f"{len(report.failures)} refused."))
    if not report.ok:
        raise typer.Exit(1)


@app.command("submit")
def submit(
    files: List[Path] = typer.Argument(..., metavar="RECORD...", help="Result records (.json) made elsewhere."),
    by: str = typer.Option(..., "--by", help="Who submits them: a name or handle, shown on the pages and the site."),
    source: Optional[str] = typer.Option(None, "--source", help="Where they come from: a pull request, a paper, a URL."),
    into: Path = typer.Option(Path("leaderboards/records"), "--into", help="The records folder they join."),
) -> None:
    """Check each RECORD as `records check` does and write it into the folder marked as submitted."""
    from ..results.submit import submit as submit_record

    for path in files:
        written, unchecked = submit_record(path, into, by, source)
        for dataset, why in unchecked.items():
            console.print(f"{dataset}: dataset fingerprint not checked: {why}")
        console.print(f"submitted: {path} -> {written}")
