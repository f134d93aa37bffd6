"""Hyperparameter tuning with Optuna, as plain functions under `recbench tune`.

A study searches a generator's declared `search_space` (or a `--space FILE`) on one dataset. Every
trial is an ordinary training run judged on validation only (recbench.runner.validate): the test split
is never evaluated and no result record is written. The trainer reports the validation metric
after each validation, so a pruner can stop a trial that is behind. Trial 0 is always the resolved
default config, so a study never ends worse than the defaults. After the trials, the best trial's
config is re-trained once and evaluated on test as a normal run whose record carries a `tune` field.

Studies live in standard Optuna storage (readable by optuna-dashboard): by default the SQLite file
RECBENCH_HOME/tune/studies.db, one study per (generator, dataset), named `GENERATOR__DATASET`, with
`__` and a short hash appended when the fixed config, the search space, the seed, the tokenizer or
the named preset (`--preset`) differ from the defaults. `n_trials` is the number of finished (complete or pruned) trials the
study should have: re-running a killed command continues the study and runs only the rest. Failed
trials stay recorded as FAIL and are queued again with the same parameters (up to `max_retries`).

The modules, in the order a study uses them:

- `devices`: the device of each worker (`--devices`), checked against the visible ones
- `space`: search spaces, checked against the run's config fields; Optuna suggestions; trial 0's values
- `plan`: the options, the resolved plan every worker shares, the study's identity and name
- `storage`: storage URLs, opening a storage, creating, continuing or loading a study
- `trials`: finished trials, claims on the study's target, failed and killed trials and their retries
- `study`: a trial's objective, workers, a whole run and the best trial's re-run on test
- `show`: a study's trials as rows, and its plots
"""

from .devices import assign as assign_devices
from .devices import parse as parse_devices
from .devices import visible as visible_devices
from .plan import PRUNERS, SAMPLERS, Plan, TuneOptions, base_spec, check_options, identity, make_plan, study_name
from .show import trial_rows, write_plots
from .space import SPACE_KEYS, SPACE_TYPES, Param, contains, default_values, describe, load_space, parse_space, space_fields, space_ranges, suggest
from .storage import STUDY_ATTR, check_storage_url, default_storage, load_study, open_storage, open_study
from .study import TuneResult, evaluate_best, fmt_params, run_study, start, work
from .trials import FINISHED, counts, finished, recover, requeue

__all__ = [
    "FINISHED", "PRUNERS", "SAMPLERS", "SPACE_KEYS", "SPACE_TYPES", "STUDY_ATTR", "Param", "Plan", "TuneOptions", "TuneResult",
    "base_spec", "check_options", "check_storage_url", "contains", "counts", "default_storage", "default_values", "describe",
    "evaluate_best", "finished", "fmt_params", "identity", "load_space", "load_study", "make_plan", "open_storage", "open_study",
    "parse_space", "recover", "requeue", "run_study", "space_fields", "space_ranges", "start", "study_name", "suggest", "trial_rows", "work",
    "write_plots", "assign_devices", "parse_devices", "visible_devices",
]
