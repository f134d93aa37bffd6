"""The learning-rate schedule of every preset of the semantic-ID generators: the warmup ends (lr is
reached) before the last planned step and the cosine decays to zero at the end of the last one;
cpu_amp=auto is decided from the CPU and recorded."""

import math

import pytest
import torch

from recbench import train
from recbench.errors import UsageError
from recbench.runner import RunSpec, resolve

# 5-core datasets: every user has >= 4 items, so sliding windows with min_hist_len 2 give
# interactions - 4 x users training samples (the last two items are validation and test)
SIZES = {"beauty": (22_363, 198_502), "sports": (35_598, 296_337), "toys": (19_412, 167_597), "cds": (75_258, 1_097_592),
         "ml-100k": (943, 100_000), "ml-1m": (6_040, 1_000_209)}
PRESETS = [None, "cpu", "ocn", "cpu,ocn"]


def planned(config, dataset):
    users, interactions = SIZES[dataset]
    steps_per_epoch = math.ceil((interactions - 4 * users) / config.batch_size)
    return steps_per_epoch * config.epochs


def lrs(config, total):
    warmup = train.warmup_steps(config, total)
    return warmup, [train.lr_factor(s, total, warmup, config.scheduler) for s in range(total + 1)]


@pytest.mark.parametrize("generator, preset", [("diff_grm", p) for p in PRESETS] + [("ar_grm", None), ("ar_grm", "cpu")])
@pytest.mark.parametrize("dataset", sorted(SIZES))
def test_each_preset_warms_up_then_decays_to_zero(generator, dataset, preset):
    config = resolve(RunSpec(generator, dataset, preset=preset)).configs["generator"]
    assert config.scheduler == "cosine" and config.grad_clip == 1.0
    total = planned(config, dataset)
    warmup, f = lrs(config, total)
    assert 0 < warmup < total
    if preset and "cpu" in preset:  # a short run warms up over a fraction of itself, not 10,000 steps
        assert warmup == round(0.05 * total)
    elif dataset not in ("ml-100k", "toys"):
        assert warmup == 10_000  # DiffGM's
    assert f[warmup - 1] == 1.0  # lr is reached at the end of the warmup
    assert all(a <= b for a, b in zip(f[:warmup], f[1:warmup]))  # rising ...
    assert all(a >= b for a, b in zip(f[warmup:], f[warmup + 1:]))  # ... then falling
    assert f[total - 1] < 1e-4 and f[total] == 0.0  # to zero at the end of the last planned step


def test_the_scheduler_the_trainer_builds_follows_lr_factor():
    config = resolve(RunSpec("diff_grm", "ml-100k", preset="cpu")).configs["generator"]
    total = 100
    warmup, f = lrs(config, total)
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.AdamW([p], lr=config.lr)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: train.lr_factor(s, total, warmup, config.scheduler))
    seen = []
    for _ in range(total):
        seen.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert seen == pytest.approx([config.lr * x for x in f[:total]])


def test_a_warmup_longer_than_the_run_is_an_error():
    config = resolve(RunSpec("diff_grm", "beauty", overrides={"epochs": "10"})).configs["generator"]
    with pytest.raises(UsageError, match="warmup_steps=10000 is not shorter than the run's 1000 planned"):
        train.warmup_steps(config, 1000)
    with pytest.raises(UsageError, match="both set a warmup"):
        resolve(RunSpec("diff_grm", "beauty", overrides={"warmup_ratio": "0.1"}))
    with pytest.raises(UsageError, match="warmup_ratio"):
        resolve(RunSpec("diff_grm", "beauty", overrides={"warmup_steps": "0", "warmup_ratio": "1.5"}))


def test_cpu_amp_auto_follows_the_cpu(monkeypatch):
    r = resolve(RunSpec("sasrec", "ml-100k", device="cpu"))
    assert r.configs["generator"].cpu_amp == train.bf16_cpu()[0] and r.cpu_amp_auto == train.bf16_cpu()[1]
    assert r.origins[("generator", "cpu_amp")] == f"auto: {r.cpu_amp_auto}"
    config = train.TrainConfig()
    assert config.cpu_amp == "auto"
    monkeypatch.setattr(train, "bf16_cpu", lambda: (False, "the CPU has neither avx512_bf16 nor amx_bf16"))
    assert "neither" in train.decide_cpu_amp(config, torch.device("cpu")) and config.cpu_amp is False
    config.cpu_amp = "auto"
    monkeypatch.setattr(train, "bf16_cpu", lambda: (True, "the CPU has avx512_bf16"))
    assert "avx512_bf16" in train.decide_cpu_amp(config, torch.device("cpu")) and config.cpu_amp is True
    config.cpu_amp = "auto"
    assert train.decide_cpu_amp(config, torch.device("cuda")) == "not used on cuda" and config.cpu_amp is False
    explicit = resolve(RunSpec("sasrec", "ml-100k", overrides={"cpu_amp": "true"})).configs["generator"]
    assert train.decide_cpu_amp(explicit, torch.device("cpu")) is None and explicit.cpu_amp is True


def test_bf16_cpu_reads_the_flags(monkeypatch, tmp_path):
    flags = tmp_path / "cpuinfo"
    flags.write_text("model name\t: Some CPU\nflags\t\t: fpu sse avx2 avx512f\n")
    real = train.Path

    def fake(p):
        return flags if str(p) == "/proc/cpuinfo" else real(p)

    monkeypatch.setattr(train, "Path", fake)
    assert train.bf16_cpu()[0] is False
    flags.write_text("flags\t\t: fpu avx512f avx512_bf16 amx_bf16\n")
    ok, why = train.bf16_cpu()
    assert ok and "avx512_bf16 and amx_bf16" in why
