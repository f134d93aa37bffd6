"""The four hooks a recbench plugin can implement. Each receives a `register` callback."""

import pluggy

hookspec = pluggy.HookspecMarker("recbench")


@hookspec
def register_datasets(register):
    """Register datasets: call register(DatasetSubclass()) for each."""


@hookspec
def register_tokenizers(register):
    """Register semantic-ID tokenizers: call register(TokenizerSubclass()) for each."""


@hookspec
def register_generators(register):
    """Register generators (models): call register(GeneratorSubclass()) for each."""


@hookspec
def register_trackers(register):
    """Register experiment trackers (TensorBoard, MLflow, ...): call register(TrackerSubclass()) for each."""
