"""GPU tests (marker `gpu`; `pytest -m gpu` is the test step of `python -m benchmarks.gpu`): every
built-in trained generator's training step and decoding on CUDA agree with its CPU fp32 results on
a fixed batch, and two processes train over NCCL. Without a CUDA device each test is skipped with
the reason.

The models are small and built on the synthetic dataset (tests/synthetic.py), so the tests run in
well under two minutes on one GPU and need no data host; the semantic-ID generators' IDs are fitted
by the real tokenizers on random item vectors written where the embedding cache is read (a lent GPU
machine has no sentence model to embed with). Each model is built once on the CPU and copied to
the GPU, so both start from the same weights. Tolerances, stated once:

- loss (forward): |CUDA bf16 - CPU fp32| <= 3% of the CPU loss + 0.02; where the loss draws random
  numbers (sampled negatives, DIFF_GRM's masks: CPU and CUDA generators differ), the mean over 16
  seeds on each device, within 5% + 0.05
- gradients (backward): cosine similarity of all gradients together >= 0.98 (0.9 for a random loss's mean)
- decoding (beam search or full ranking) of a model trained 2 epochs on the CPU: the top-10 lists
  overlap by >= 90% on average in fp32 on CUDA (as evaluation runs), >= 60% under bf16 autocast
"""

import dataclasses
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from recbench import registry as plugin_registry
from recbench.api import TrainConfig
from recbench.data import Source, Split, prepare
from recbench.embeddings import EmbeddingConfig, cache_path, write_cache
from recbench.pipeline import seed_everything
from recbench.train import train

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device (torch sees none): "
                                                  "the GPU tests run on a GPU machine, see docs/gpu.md")]

REGISTRY = plugin_registry.registry()
TRAINED = [name for name in REGISTRY.names("generator") if issubclass(REGISTRY.get("generator", name).Config, TrainConfig)]
SMALL = {"n_embd": 32, "n_head": 2, "n_layer": 2, "dropout": 0.1, "batch_size": 64, "epochs": 2, "lr": 5e-3, "eval_batch_size": 64,
         "patience": 100, "warmup_steps": 0, "n_digit": 4, "n_inner": 64, "encoder_n_layer": 1, "decoder_n_layer": 1,
         "beam_size_val": 32, "beam_size_test": 32}
SMALL_IDS = {"n_digit": 4, "codebook_size": 16}
EMBEDDING = EmbeddingConfig(sent_emb_model="random-item-vectors", sent_emb_pca=32)


@pytest.fixture(scope="module")
def split(tmp_path_factory):
    from synthetic import write_ml100k

    folder = write_ml100k(tmp_path_factory.mktemp("synthetic"))
    os.environ["RECBENCH_DATA"] = str(tmp_path_factory.mktemp("data"))
    ds = REGISTRY.get("dataset", "ml-100k")
    return Split(prepare(ds, ds.Config(), Source(ds.name, mirror=folder, cache=folder / "cache")), max_seq_len=20)


@pytest.fixture(scope="module")
def semantic_ids(split):
    from recbench import semantic_ids as sid

    vectors = np.random.default_rng(0).standard_normal((split.n_items + 1, 64)).astype(np.float32)
    vectors[0] = 0
    write_cache(cache_path(split.data, EMBEDDING), {"vectors": vectors}, {})
    built = {}

    def get(tokenizer):
        if tokenizer not in built:
            entry = REGISTRY.entry("tokenizer", tokenizer)
            built[tokenizer] = sid.build(split.data, split, entry, entry.obj.Config(**SMALL_IDS), EMBEDDING, progress=False, device="cpu")
        return built[tokenizer]

    return get


def build(name, split, ids, seed=0):
    gen = REGISTRY.get("generator", name)
    fields = {f.name for f in dataclasses.fields(gen.Config)}
    config = gen.Config(**{k: v for k, v in SMALL.items() if k in fields})
    seed_everything(seed)
    if gen.inputs == "semantic_ids":
        return gen.build(config, split, semantic_ids=ids(gen.default_tokenizer)), config
    return gen.build(config, split), config


def fixed_batch(split, n=64):
    users, positions = split.train_positions(False, 1)
    return split.gather(users[:n], positions[:n])


def loss_and_grads(model, batch, device, seed, bf16):
    """The loss (in eval mode: no dropout) and every parameter's gradient, on `device`."""
    model.eval()
    model.zero_grad(set_to_none=True)
    torch.manual_seed(seed)
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
        loss = model(batch.to(device))
    loss.backward()
    grads = torch.cat([p.grad.float().flatten().cpu() if p.grad is not None else torch.zeros(p.numel()) for p in model.parameters()])
    return float(loss.detach()), grads


def cosine(a, b):
    return float(torch.nn.functional.cosine_similarity(a.double(), b.double(), dim=0))


@pytest.mark.parametrize("name", TRAINED)
def test_the_training_step_on_cuda_in_bf16_matches_the_cpu_in_fp32(name, split, semantic_ids):
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    model, _ = build(name, split, semantic_ids)
    on_gpu, _ = build(name, split, semantic_ids)
    on_gpu.load_state_dict(model.state_dict())
    on_gpu.to(cuda)
    batch = fixed_batch(split)
    first, _ = loss_and_grads(model, batch, cpu, 0, False)
    random = loss_and_grads(model, batch, cpu, 1, False)[0] != first
    seeds = range(16) if random else [0]
    ref = [loss_and_grads(model, batch, cpu, s, False) for s in seeds]
    got = [loss_and_grads(on_gpu, batch, cuda, s, True) for s in seeds]
    ref_loss, got_loss = np.mean([r[0] for r in ref]), np.mean([g[0] for g in got])
    ref_grad, got_grad = torch.stack([r[1] for r in ref]).mean(0), torch.stack([g[1] for g in got]).mean(0)
    rel, absolute, least = (0.05, 0.05, 0.9) if random else (0.03, 0.02, 0.98)
    assert np.isfinite(got_loss) and abs(got_loss - ref_loss) <= rel * abs(ref_loss) + absolute, (name, ref_loss, got_loss)
    assert cosine(ref_grad, got_grad) >= least, (name, cosine(ref_grad, got_grad))


@pytest.mark.parametrize("name", TRAINED)
def test_decoding_on_cuda_matches_the_cpu(name, split, semantic_ids, tmp_path):
    model, config = build(name, split, semantic_ids)
    train(model, split, config, tmp_path / "run", seed=0, device=torch.device("cpu"))
    model.eval()
    batch = next(split.eval_batches("test", 64))
    with torch.no_grad():
        ref = model.recommend(batch, 10)
        model.to("cuda")
        fp32 = model.recommend(batch.to("cuda"), 10).cpu()
        with torch.autocast("cuda", dtype=torch.bfloat16):
            bf16 = model.recommend(batch.to("cuda"), 10).cpu()

    def overlap(a, b):
        return np.mean([len(set(x.tolist()) & set(y.tolist())) / 10 for x, y in zip(a, b)])

    assert ((bf16 >= 1) & (bf16 <= split.n_items)).all() and all(len(set(row.tolist())) == 10 for row in bf16)
    assert overlap(ref, fp32) >= 0.9, (name, overlap(ref, fp32))
    assert overlap(ref, bf16) >= 0.6, (name, overlap(ref, bf16))


def test_diff_grm_random_masking_on_cuda_masks_a_digit_of_every_sample(split, semantic_ids):
    """The `random` strategy's CUDA path (a digit for the samples that drew none, without a read back to the host)."""
    gen = REGISTRY.get("generator", "diff_grm")
    fields = {f.name for f in dataclasses.fields(gen.Config)}
    config = gen.Config(**{k: v for k, v in SMALL.items() if k in fields}, masking_strategy="random")
    model = gen.build(config, split, semantic_ids=semantic_ids(gen.default_tokenizer)).to("cuda")
    target = torch.randint(0, SMALL_IDS["codebook_size"], (4096, SMALL_IDS["n_digit"]), device="cuda")
    revealed, weight = model.views(target, None, None)
    masked = ~revealed[0]
    assert masked.any(1).all() and not masked.all(1).all() and weight.shape == (1, *target.shape)


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="DDP over NCCL needs two GPUs; torch sees fewer")
def test_two_processes_train_over_nccl_and_write_one_record(tmp_path):
    from synthetic import write_ml100k

    folder = write_ml100k(tmp_path / "synthetic")
    env = {**os.environ, "RECBENCH_HOME": str(tmp_path / "home"), "RECBENCH_DATA": str(tmp_path / "data"),
           "RECBENCH_DATA_MIRROR": str(folder), "RECBENCH_OFFLINE": "1"}
    out = subprocess.run([sys.executable, "-m", "recbench", "run", "-p", "sasrec", "-d", "ml-100k", "--device", "cuda", "--nproc", "2",
                          "--n_embd=32", "--n_layer=1", "--max_seq_len=20", "--epochs=2", "--eval_start_epoch=1"],
                         env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    from recbench.results import records

    [path] = (tmp_path / "home" / "results" / "ml-100k").glob("*.json")
    record = records.load(path)
    assert record.device.type == "cuda" and record.device.processes == 2
