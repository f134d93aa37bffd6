"""`recbench reproduce RECORD`: re-run a record's exact config and compare its metrics with the record's.

The run is rebuilt from the record (generator, dataset, tokenizer, seed and the full saved config
as overrides) and goes through recbench.runner.run like any run, so it writes a record of its own.
A reproduction matches *exactly* when every metric and every user's test rank is identical, and
*within tolerance* when no metric differs by more than TOLERANCE (absolute): nondeterministic GPU
kernels or another thread count may move a few users' ranks, which shifts a metric by about one
user's share (1/users) and stays far below the spread between seeds. A matching reproduction's
record carries provenance "reproduced" (the run id it matched), which the pages and the site show.
"""

from pathlib import Path
from typing import Optional

import numpy as np
import typer
from rich.console import Console
from rich.table import Table

from .. import paths
from ..errors import UsageError
from ..metrics import metric_names
from ..results import records

TOLERANCE = 1e-3

console = Console(soft_wrap=True)  # long paths stay whole when the output goes to a file


def differences(recorded: records.Record, reproduced: records.Record) -> list[tuple[str, str, float, float]]:
    """(split, metric, recorded, reproduced) for every metric on validation and test."""
    return [
        (split, m, getattr(recorded.metrics, split)[m], getattr(reproduced.metrics, split)[m])
        for split in ("valid", "test")
        for m in metric_names()
    ]


def verdict(recorded: records.Record, reproduced: records.Record) -> tuple[str, str]:
    """('exact' | 'tolerance' | 'differs', a sentence saying so)."""
    rows = differences(recorded, reproduced)
    largest = max(abs(new - old) for _, _, old, new in rows)
    ranks_old, ranks_new = recorded.test_ranks(), reproduced.test_ranks()
    same_users = np.array_equal(recorded.users(), reproduced.users())
    moved = int((ranks_old != ranks_new).sum()) if same_users and len(ranks_old) == len(ranks_new) else None
    users = "the evaluated users differ" if moved is None else f"{moved:,} of {len(ranks_old):,} users' test ranks differ"
    if largest == 0 and moved == 0:
        return "exact", "Reproduced exactly: every metric and every user's test rank is identical."
    if largest <= TOLERANCE:
        return "tolerance", f"Reproduced within tolerance {TOLERANCE} (absolute, every metric): largest difference {largest:.2e}; {users}."
    return "differs", f"Not reproduced: the largest difference, {largest:.4f}, exceeds the tolerance {TOLERANCE}; {users}."


def caveats(recorded: records.Record, reproduced: records.Record) -> list[str]:
    """What differs between the two runs' circumstances and may explain a difference."""
    notes = []
    if recorded.dataset.fingerprint != reproduced.dataset.fingerprint:
        notes.append(f"The prepared data differs from the record's (fingerprint {reproduced.dataset.fingerprint} here, "
                     f"{recorded.dataset.fingerprint} in the record): other raw files.")
    if recorded.config_fingerprint != reproduced.config_fingerprint:
        notes.append("The config resolves to another fingerprint here: the plugin's config fields or defaults changed since the record.")
    for kind in ("generator", "dataset"):
        old, new = getattr(recorded, kind).version, getattr(reproduced, kind).version
        if old != new:
            notes.append(f"The {kind} plugin is version {new} here, {old} in the record.")
    if recorded.device.name != reproduced.device.name:
        notes.append(f"Other hardware: {reproduced.device.name} here, {recorded.device.name} in the record.")
    if (recorded.device.processes or 1) > 1:
        notes.append(f"The record ran data-parallel in {recorded.device.processes} processes; this reproduction ran in one.")
    return notes


def command(
    record_path: Path = typer.Argument(..., metavar="RECORD", help="A result record (.json)."),
    results_dir: Optional[Path] = typer.Option(None, "--results-dir", help="Where to write the new record (default: RECBENCH_HOME/results)."),
    device: Optional[str] = typer.Option(None, "--device", help="auto, cpu, cuda or cuda:N (default: the record's device type)."),
) -> None:
    """Re-run a record's exact config and print recorded against reproduced metrics (exit 1 if they differ)."""
    from ..runner import spec_from_record

    if not record_path.is_file():
        raise UsageError(f"Result record '{record_path}' does not exist.")
    if results_dir is not None:  # a usage error of this command, not of the record
        paths.folder(results_dir, "--results-dir")
    recorded = records.load(record_path)
    spec = spec_from_record(recorded, device, results_dir)
    console.print(f"Reproducing {recorded.run_id}: {spec.generator} on {spec.dataset}, seed {spec.seed}, on {spec.device}")
    try:
        from ..runner import run

        reproduced, path = run(spec, log=console.print)
    except UsageError as exc:
        raise UsageError(f"Record '{recorded.run_id}' cannot be re-run with this recbench: {exc}") from exc
    table = Table(title=f"{recorded.run_id}: recorded vs reproduced", header_style="bold")
    for col, justify in (("split", "left"), ("metric", "left"), ("recorded", "right"), ("reproduced", "right"), ("difference", "right")):
        table.add_column(col, justify=justify)
    for split, metric, old, new in differences(recorded, reproduced):
        table.add_row(split, metric, f"{old:.6f}", f"{new:.6f}", f"{new - old:+.2e}" if new != old else "0")
    console.print(table)
    for note in caveats(recorded, reproduced):
        console.print(f"Note: {note}")
    outcome, sentence = verdict(recorded, reproduced)
    if outcome != "differs":  # the new record says what it reproduced; a run that differs stays a plain run
        largest = max(abs(new - old) for _, _, old, new in differences(recorded, reproduced))
        reproduced.provenance = records.Provenance(kind="reproduced", reproduces=recorded.run_id, max_difference=largest,
                                                   tolerance=TOLERANCE)
        path = records.write(reproduced, path.parent.parent)
    console.print(f"Reproduced record written to {path}")
    console.print(sentence, markup=False)
    if outcome == "differs":
        raise typer.Exit(1)
