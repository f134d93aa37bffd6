"""The user's own datasets (`recbench datasets add`, kept in RECBENCH_HOME/datasets.json),
registered as every dataset plugin's are, so that their names resolve in every command.
The format is recbench.data.generic's (docs/own-data.md)."""

from recbench import hookimpl
from recbench.data import local


@hookimpl
def register_datasets(register):
    for dataset in local.datasets():
        register(dataset)
