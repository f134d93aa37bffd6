"""What a plugin implements. A plugin module registers instances of these classes from its hooks:

    from recbench import hookimpl
    from recbench.api import Generator

    @hookimpl
    def register_generators(register):
        register(MyGenerator())

Each registered object is self-describing: a unique `name` (what users type), a one-line
`description`, and a typed `Config` dataclass whose defaults are the published settings.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import numpy as np

from .config import ranged
from .data import RawData, Source
from .errors import UsageError

if TYPE_CHECKING:
    from .data import Batch, Split
    from .recommender import Recommender


@dataclass
class DatasetConfig:
    k_core: int = ranged(0, ge=0)  # filter to users and items with >= k interactions (0: take the data as published)


class Dataset:
    """A source of interactions and item text. The core prepares, caches and splits it."""

    name: ClassVar[str]
    description: ClassVar[str]
    aliases: ClassVar[tuple[str, ...]] = ()
    Config: ClassVar[type] = DatasetConfig
    max_seq_len: ClassVar[int] = 50  # history fed to a model unless the generator's config says otherwise
    expect_core: ClassVar[int] = 0  # the published data is k-core: verify it (0: no check)

    def locate(self, source: Source) -> list[Path]:
        """The raw files to read, found through `source`; raise source.missing(...) if absent."""
        raise NotImplementedError

    def read(self, files: list[Path], config) -> RawData:
        """Parse the located files into raw interactions and item text."""
        raise NotImplementedError


@dataclass
class GeneratorConfig:
    max_seq_len: int = ranged(0, ge=0)  # most recent history items fed to the model (0: the dataset's default)
    eval_batch_size: int = ranged(256, ge=1)  # users per evaluation batch

    # keys whose value counts items (beams, graph edges): at most the catalogue's size, checked once the
    # data is known, before any semantic ID is built or any model trained
    AT_MOST_ITEMS: ClassVar[tuple[str, ...]] = ()

    def check_catalogue(self, n_items: int, dataset: str) -> None:
        for key in self.AT_MOST_ITEMS:
            if getattr(self, key) > n_items:
                raise UsageError(f"Config value for '{key}' must be at most the number of items of {dataset} ({n_items:,}); "
                                 f"got {getattr(self, key):,}.")

    # Evaluation settings: keys that change how a trained model is decoded or batched, never its
    # weights. An --eval_only run may give them other values than its checkpoint's; any other key
    # must agree with the checkpoint (recbench.eval_only). A subclass extends the tuple.
    evaluation_keys: ClassVar[tuple[str, ...]] = ("eval_batch_size",)


@dataclass
class TrainConfig(GeneratorConfig):
    """The core trainer's settings: the Config of every generator whose model trains through `loss()`."""

    epochs: int = ranged(200, ge=1)  # upper bound; early stopping usually ends the run sooner
    batch_size: int = ranged(128, ge=1)
    # adamw (beta1, beta2, weight_decay) or adafactor (torch.optim.Adafactor: factored second moments,
    # updates scaled by each parameter's RMS, step size min(lr, 1/sqrt(step)): with lr 0.01, 0.01 for the
    # first 10,000 steps and inverse-square-root decay after, the T5/TIGER schedule by itself)
    optimizer: Literal["adamw", "adafactor"] = "adamw"
    lr: float = ranged(1e-3, gt=0)
    weight_decay: float = ranged(0.0, ge=0)
    beta1: float = ranged(0.9, ge=0, lt=1)
    beta2: float = ranged(0.999, ge=0, lt=1)
    warmup_steps: int = ranged(0, ge=0)  # linear warmup from 0 to lr over this many optimizer steps ...
    warmup_ratio: float = ranged(0.0, ge=0, lt=1)  # ... or over this fraction of the run's planned steps (epochs x batches; not both)
    scheduler: Literal["constant", "cosine"] = "constant"  # after warmup: keep lr, or cosine-decay to 0
    grad_clip: float = ranged(0.0, ge=0)  # max gradient norm (0: no clipping)
    train_sliding: bool = False  # one sample per prefix of the training part, instead of one per user
    # with one sample per user: a training part longer than max_seq_len + 1 items is also cut into windows
    # that predict only their last item (the first window predicts at every position), so every training
    # target is predicted once an epoch (RPG's reference); off: the most recent max_seq_len items only
    train_windows: bool = False
    min_hist_len: int = ranged(1, ge=1)  # shortest history of a sliding-window sample
    # batches per pool whose samples are sorted by history length (0: plain shuffling). With N > 0,
    # each epoch's shuffled samples are cut into pools of N * batch_size, sorted by length within a
    # pool, cut into batches, the batches shuffled, and each batch trimmed to its longest history
    # (recbench.data.buckets); fewer padding positions, the same samples per epoch
    bucket_pool: int = ranged(0, ge=0)
    eval_every: int = ranged(1, ge=1)  # validate every this many epochs ...
    eval_start_epoch: int = ranged(0, ge=0)  # ... from this epoch on (1-based); a run that ends before it is validated at its last epoch
    patience: int = ranged(10, ge=1)  # stop after this many validations without improvement
    val_metric: str = "ndcg@10"  # a metric, or a weighted sum such as 0.8*ndcg@10+0.2*recall@10
    amp: bool = True  # bf16 autocast on GPU
    # bf16 autocast on CPU too: about 1.8x faster where the CPU has AVX512-BF16 or AMX, several times
    # slower where it has neither; "auto" decides from the CPU (the run prints and records the choice)
    cpu_amp: bool | Literal["auto"] = "auto"
    # torch.compile the model the trainer steps (kernels fused for the GPU; the first batches of each
    # shape pay the compilation). Hashed into the config fingerprint only when on (results/upgrade.py)
    compile: bool = False

    def validate(self) -> None:
        from .metrics import parse_metric

        parse_metric(self.val_metric)
        if self.warmup_steps and self.warmup_ratio:
            raise UsageError(f"warmup_steps ({self.warmup_steps}) and warmup_ratio ({self.warmup_ratio}) both set a warmup; "
                             "set the other to 0.")


@dataclass(frozen=True)
class OptionAlias:
    """A flag of another code base's command line that `recbench run` accepts as written there, so
    that a published command runs unchanged. A generator declares its own in `option_aliases`
    (flag without dashes -> OptionAlias); the registry gathers every generator's, since a flag may
    choose the generator itself.

    `option` is "--plugin", "--dataset" or "--tokenizer": `--FLAG=VALUE` gives that option the value
    `values[VALUE lower-cased]`, or VALUE itself (lower-cased where `lower`); a value that disagrees
    with the option given is an error. With `switch` the flag is true or false, and true gives the
    option `switch` where it holds nothing else than one of `refines`. Any other `option` is a
    setting's own name (a config key, or run control such as rebuild_ids): the flag is that setting
    under another name."""

    option: str
    values: dict[str, str] | None = None
    lower: bool = False
    switch: str | None = None
    refines: tuple[str, ...] = ()


class Generator:
    """A recommendation method: builds a Recommender from its config and the training data."""

    name: ClassVar[str]
    description: ClassVar[str]
    Config: ClassVar[type] = GeneratorConfig
    inputs: ClassVar[str] = "items"  # "items", or "semantic_ids" (consumes a tokenizer's codes)
    default_tokenizer: ClassVar[str | None] = None
    presets: ClassVar[dict[str, dict[str, Any]]] = {}  # dataset name -> published settings for it
    named_presets: ClassVar[dict[str, dict[str, Any]]] = {}  # `--preset NAME` -> settings over the dataset's (e.g. "cpu")
    search_space: ClassVar[dict[str, Any]] = {}  # for tuning: field -> range (see recbench.tune)
    option_aliases: ClassVar[dict[str, OptionAlias]] = {}  # another code base's flags that `recbench run` accepts

    def build(self, config, split: Split, *, semantic_ids=None) -> Recommender:
        """The untrained model for `config` on `split`.

        Generators with `inputs = "semantic_ids"` are called with the keyword `semantic_ids`: the
        recbench.semantic_ids.SemanticIDs the core built (or loaded) for this run, after the split,
        with the run's tokenizer (`--tokenizer`, else `default_tokenizer`) and embedding config.
        Its `codes` ([N+1, n_digit] int64, row 0 padding) give every item one unique ID. Item-ID
        generators are called as `build(config, split)` and may leave the keyword out.
        """
        raise NotImplementedError


@dataclass
class TokenizerConfig:
    """The settings every tokenizer has. A field's comment is its help text in `recbench config`
    for every tokenizer that inherits it, third parties' too, so it says nothing about how one
    tokenizer fits; a subclass that redeclares a field (same default) gives it its own help."""

    n_digit: int = ranged(4, ge=1)  # digits per semantic ID
    codebook_size: int = ranged(256, ge=2)  # codes per digit: one byte per digit
    seed: int = 0  # seeds whatever the fit draws at random; a fit is deterministic for a seed

    def validate(self) -> None:
        if self.n_digit < 1:
            raise UsageError(f"n_digit must be >= 1; got {self.n_digit}.")
        if self.codebook_size < 2:
            raise UsageError(f"codebook_size must be >= 2; got {self.codebook_size}.")


class Quantizer:
    """A fitted tokenizer: turns a vector into `n_digit` codes of `codebook_size` each, and back.

    `encode` and `decode` are all the core needs, so a digit's code may depend on the digits before
    it (a k-means tree, an RQ-VAE). The core measures quantization error with `decode` (per digit:
    the reconstruction from the first k digits) and moves an item whose ID collides with another's
    to its next-best free code of the last digit, ranked by `last_digit_errors` (unless the
    tokenizer declares `extra_digit`: then the core numbers the colliding items in the last digit).
    """

    n_digit: int
    codebook_size: int

    def encode(self, x: np.ndarray) -> np.ndarray:
        """[n, n_digit] int64 codes of the rows of `x` ([n, dim] float32)."""
        raise NotImplementedError

    def decode(self, codes: np.ndarray, digits: int | None = None) -> np.ndarray:
        """[n, dim] float32: the reconstruction of `codes` from their first `digits` digits (all by
        default; 0 digits reconstruct nothing: zeros)."""
        raise NotImplementedError

    def parameters(self) -> dict[str, np.ndarray]:
        """Everything that was learned (codebooks, rotation, network weights), by name; the core
        saves them beside the IDs."""
        raise NotImplementedError

    def last_digit_errors(self, x: np.ndarray, codes: np.ndarray) -> np.ndarray:
        """[n, codebook_size] float64: each row's squared reconstruction error were its last digit
        code k. This default decodes every alternative; a quantizer whose last digit adds a
        codeword can do it in one product (recbench_plugins.tokenizers.Additive)."""
        out = np.empty((len(codes), self.codebook_size))
        alternative = codes.copy()
        for k in range(self.codebook_size):
            alternative[:, -1] = k
            out[:, k] = ((x - self.decode(alternative)) ** 2).sum(1)
        return out


class Tokenizer:
    """A semantic-ID method: fits a Quantizer on the training items' embeddings.

    The core embeds the item text, reduces it (PCA fitted on the training items), calls `check`
    then `fit` with the training items' vectors only, encodes every item with the fitted
    Quantizer, makes the IDs unique, measures them and caches IDs and parameters.

    IDs are made unique in one of two ways. By default every digit is learned, and an item whose
    codes another item shares is moved to its next-best free code of the last digit
    (`Quantizer.last_digit_errors`). A tokenizer that sets `extra_digit = True` learns only the
    first n_digit-1 digits (its Quantizer encodes the last one as 0 and decodes it as nothing), and
    the core numbers the items that share those digits 0, 1, 2, ... in item order in the last one,
    as TIGER (Rajput et al., NeurIPS 2023) does.
    """

    name: ClassVar[str]
    description: ClassVar[str]
    Config: ClassVar[type] = TokenizerConfig
    extra_digit: ClassVar[bool] = False  # True: the last digit is not learned; it numbers the items that share the other digits (TIGER)
    resumable: ClassVar[bool] = False  # True: `fit` takes checkpoint=, a recbench.fit_checkpoint.FitCheckpoint (or None), and resumes from it

    def check(self, config, dim: int, n_train: int) -> None:
        """Raise UsageError if `config` cannot be fitted on `n_train` vectors of `dim` dimensions."""
        if config.codebook_size > n_train:
            raise UsageError(f"codebook_size={config.codebook_size} is more codes than the {n_train:,} training items "
                             "the tokenizer is fitted on; use a smaller codebook_size.")

    def fit(self, x: np.ndarray, config) -> Quantizer:
        """Learn the codebooks from `x` ([n_train, dim] float32); deterministic for `config.seed`.
        The core calls it with faiss single-threaded. A long fit can declare `resumable` and take
        `checkpoint`: it then loads the state an interrupted run saved and saves its own when
        `checkpoint.due()`, so that a re-run continues with the same result (see recbench_plugins/models/rqvae.py)."""
        raise NotImplementedError


@dataclass
class TrackerConfig:
    """The settings every tracker has (none yet). A tracker's own settings are fields of a subclass;
    a run reads them from the environment as RECBENCH_<NAME>_<KEY> (RECBENCH_TENSORBOARD_LOGDIR), so
    that the command line stays the same wherever the curves go (recbench.trackers)."""


@dataclass
class RunInfo:
    """What a tracker is told about the run it follows, when training starts."""

    run_id: str  # the record's run id, also the run folder's name
    generator: str
    dataset: str
    tokenizer: str | None
    seed: int
    setting: str  # what the command set over the defaults, as the leaderboard names the row
    folder: str | None  # the run folder (checkpoints, log.jsonl); None for a run that does not train
    group: str | None = None  # runs that belong together: a tuning study's name for its trials and its best trial's re-run
    trial: int | None = None  # a tuning trial's number in that study (None: not a trial)


class TrackerRun:
    """One run in a tracker, as `Tracker.start` returns it. The core calls it from one process only
    (rank 0 of a data-parallel run). Any exception it raises costs the tracker the rest of the run,
    never the run itself: the core prints one warning and stops calling it."""

    def log_params(self, params: dict[str, Any]) -> None:
        """Record `params` (flat name -> value) as the run's parameters."""

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        """Record `metrics` at `step`. Names are 'train/loss' and 'train/lr' at optimizer steps,
        'epoch/...' and 'valid/...' at epochs, 'test/...' at the last epoch; a tracker that does not
        accept a character of a name (MLflow: '@') changes it, the same way each time."""
        raise NotImplementedError

    def finish(self, metrics: dict[str, float] | None, record_path: str | None) -> dict[str, str] | None:
        """End the run: `metrics` are the final test metrics and `record_path` the result record's
        file (both None for a run that ended without a record; `metrics` {} and no record for a tuning
        trial that finished: it is validated only). Returns where the tracker keeps the
        run, {"uri": ..., "run_id": ...} (either may be left out), which the record keeps under
        `trackers`, so that a row of the leaderboard leads back to its curves."""
        return None


class Tracker:
    """An experiment tracker: sends a run's curves, parameters and final metrics somewhere to look at.

    Selected per run with `recbench run --tracker NAME[,NAME]` (or RECBENCH_TRACKERS). `start` should
    import the tracker's library itself, so that a tracker whose package is missing fails there, with
    one warning, and is left out of the run, instead of failing every command at start-up.
    """

    name: ClassVar[str]
    description: ClassVar[str]
    aliases: ClassVar[tuple[str, ...]] = ()
    Config: ClassVar[type] = TrackerConfig

    def start(self, run: RunInfo, params: dict[str, Any], config) -> TrackerRun:
        """Open a run for `run`, with `params` (the resolved config, flat) and this tracker's `config`."""
        raise NotImplementedError


def __getattr__(name: str):
    """Recommender, Batch and Split are torch-based: imported on first use, so that resolving a plugin's
    name or config (which imports this module) imports no torch."""
    if name == "Recommender":
        from .recommender import Recommender

        return Recommender
    if name in ("Batch", "Split"):
        from .data import split

        return getattr(split, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["Batch", "Dataset", "DatasetConfig", "Generator", "GeneratorConfig", "Quantizer", "RawData", "Recommender",
           "RunInfo", "Source", "Split", "Tokenizer", "TokenizerConfig", "Tracker", "TrackerConfig", "TrackerRun", "TrainConfig"]
