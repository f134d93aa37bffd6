"""What `python -m benchmarks.gpu` runs: the generators, their settings, and the time each step is
estimated to take before it runs.

The published sizes are each generator's defaults with its Beauty preset (what `recbench run -p
NAME -d beauty` resolves). One setting differs, and the summary says so: the semantic-ID
generators embed item text with all-MiniLM-L6-v2, whose semantic IDs are cached here and travel
with the working tree (benchmarks.gpu_prepare); the published embedding models (bge-large,
sentence-t5) would need a download, and a lent GPU machine reaches no model hub. The CPU mode
(`tiny`) keeps the data and the code path and shrinks the models and batches, so every step runs
in about a minute on two cores.

Estimates come from FLOPs: a model's training FLOPs per sample, counted on the CPU by
torch.utils.flop_counter.FlopCounterMode over one batch's forward and backward pass (matrix
products and attention; elementwise work is not counted), divided by an assumed sustained GPU
throughput (ASSUMED_TFLOPS, a fraction of a current data-centre GPU's bf16 peak, since these models are
small and their steps are short); the GPU run replaces the assumption by measurement.
"""

from __future__ import annotations

import dataclasses
import os

# Beauty, the published sizes' dataset; RECBENCH_GPU_CHECK_DATASET names another for the CPU mode on a
# machine without Beauty's files (.ci/run: the synthetic dataset in MovieLens-100K's form, as ml-100k)
DATASET = os.environ.get("RECBENCH_GPU_CHECK_DATASET", "beauty")
GENERATORS = ("diff_grm", "ar_grm", "tiger", "rpg", "sasrec", "hstu")
FULL_RUNS = ("diff_grm", "ar_grm")  # published-size runs written as records when the measured speed says they fit
OFFLINE_EMBEDDING = "all-MiniLM-L6-v2"
# the CPU mode's sizes (only the keys a generator's config has apply)
TINY = {"n_embd": 32, "n_head": 2, "n_layer": 1, "n_inner": 64, "encoder_n_layer": 1, "decoder_n_layer": 1, "batch_size": 32,
        "eval_batch_size": 64, "beam_size_val": 8, "beam_size_test": 8, "epochs": 1}
# the synthetic dataset of the CPU mode without Beauty (120 items) is too small for 256 codes per digit, 256 PCA dimensions or a beam of 256
SMALL_CATALOGUE = {"codebook_size": 16, "sent_emb_pca": 32, "beam_size_val": 32, "beam_size_test": 32}
ASSUMED_TFLOPS = 100.0  # sustained training throughput assumed for estimates: about a tenth of an H100/H200's dense bf16 peak
# dense bf16 peak TFLOP/s by a substring of torch.cuda.get_device_name (vendor data sheets, SXM where both exist)
PEAK_BF16_TFLOPS = {"H200": 989.4, "H100 PCIe": 756.0, "H100": 989.4, "A100": 312.0, "L40S": 362.1, "L4": 121.0, "A10": 125.0}


def peak_tflops(device_name: str) -> float | None:
    """The dense bf16 peak of a GPU by its name; None where it is not in the table (a CPU, an unlisted GPU)."""
    return next((peak for key, peak in PEAK_BF16_TFLOPS.items() if key in device_name), None)


def run_spec(name: str, device: str, tiny: bool = False, **overrides):
    """The RunSpec of generator `name` on Beauty as planned: published size (or the CPU mode's),
    the offline embedding model for semantic-ID generators, plus `overrides` (keys its configs lack are dropped)."""
    from recbench.runner import RunSpec, resolve

    small = SMALL_CATALOGUE if DATASET != "beauty" else {}
    settings = {**(TINY if tiny else {}), **small, "sent_emb_model": OFFLINE_EMBEDDING, **overrides}
    known = {f.name for config in resolve(RunSpec(name, DATASET, device="cpu")).configs.values() for f in dataclasses.fields(config)}
    return RunSpec(name, DATASET, device=device, overrides={k: str(v) for k, v in settings.items() if k in known})


def setting(name: str, tiny: bool) -> str:
    """The setting's label in the summary."""
    semantic = name in ("diff_grm", "ar_grm", "tiger", "rpg")
    return ("tiny (CPU mode)" if tiny else "published size") + (f", sent_emb_model={OFFLINE_EMBEDDING}" if semantic else "")


def validations(config) -> int:
    """How many validations a run of `config` makes at most (no early stopping), its final one included."""
    first, every = max(1, config.eval_start_epoch), config.eval_every
    return max(1, config.epochs // every - (first - 1) // every)  # epochs from `first` on that are multiples of eval_every
