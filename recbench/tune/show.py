"""Showing a study (`recbench tune --show`): one row per trial, and plots of its history,
intermediate values and parameter importance."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState


def trial_rows(study: optuna.Study) -> list[dict[str, Any]]:
    """Per trial: number, value, state (with why: pruned at epoch N, error, surplus), params, duration, notes."""
    rows = []
    for t in study.get_trials(deepcopy=False):
        notes = []
        if t.user_attrs.get("defaults"):
            notes.append("defaults")
        if "retry_of" in t.user_attrs:
            notes.append(f"retry of {t.user_attrs['retry_of']}")
        if t.state == TrialState.PRUNED and t.intermediate_values:
            notes.append(f"pruned at epoch {max(t.intermediate_values)}")
        if t.user_attrs.get("surplus"):
            notes.append("not run: the study's target was reached by other workers")
        elif t.state == TrialState.FAIL:
            notes.append(str(t.user_attrs.get("error", "killed or interrupted")).splitlines()[0][:120])
        if "epochs" in t.user_attrs:
            notes.append(f"{t.user_attrs['epochs']} epochs, best {t.user_attrs.get('best_epoch')}")
        if "device" in t.user_attrs and "device_name" in t.user_attrs:
            notes.append(f"on {t.user_attrs['device']} ({t.user_attrs['device_name']})")
        elif "device" in t.user_attrs:
            notes.append(f"on {t.user_attrs['device']}")
        rows.append({"number": t.number, "value": t.value, "state": t.state.name, "params": dict(t.params),
                     "seconds": t.duration.total_seconds() if t.duration else None, "notes": "; ".join(notes)})
    return rows


def write_plots(study: optuna.Study, folder: Path) -> tuple[list[Path], list[str]]:
    """Optimisation history, intermediate values and parameter importance as PNGs in `folder`;
    (files written, messages on plots that could not be drawn)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from optuna.visualization import matplotlib as ovm

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    written, messages = [], []

    def save(kind: str, draw) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ax = draw()
        fig = ax.figure
        fig.set_size_inches(9, 5.5)
        fig.tight_layout()
        path = folder / f"{study.study_name}_{kind}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)

    if not complete:
        return [], ["no completed trial yet: nothing to plot"]
    save("history", lambda: ovm.plot_optimization_history(study))
    if any(t.intermediate_values for t in study.get_trials(deepcopy=False)):
        save("intermediate", lambda: ovm.plot_intermediate_values(study))
    varied = [k for k in {k for t in complete for k in t.params} if len({repr(t.params.get(k)) for t in complete}) > 1]
    if len(complete) < 2:
        messages.append(f"parameter importance needs at least 2 completed trials; the study has {len(complete)}")
    elif not varied:
        messages.append("parameter importance needs a parameter that varies across completed trials; none does yet")
    else:
        try:
            evaluator = optuna.importance.FanovaImportanceEvaluator(seed=0)
            save("importance", lambda: ovm.plot_param_importances(study, evaluator=evaluator))
        except (ImportError, RuntimeError, ValueError) as exc:
            messages.append(f"parameter importance could not be computed: {exc}")
    return written, messages
