"""The machine a run uses and the record it writes: the device by name, threads and peak memory as
the record states them, the protocol in words, and the typed record itself (runner.run calls
`build_record` once, after the test evaluation)."""

from __future__ import annotations

import resource
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from . import beyond
from . import config as cfg
from . import distributed as dist
from .errors import UsageError
from .evaluate import Evaluation
from .results import records

if TYPE_CHECKING:
    from .runner import Resolved, RunSpec

def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda was asked for, but torch sees no CUDA device. Valid: auto, cpu (or cuda on a GPU machine).")
    if name not in ("cpu", "cuda") and not name.startswith("cuda:"):
        raise UsageError(f"Unknown device '{name}'. Valid: auto, cpu, cuda, cuda:N.")
    return torch.device(name)


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return f"{line.split(':', 1)[1].strip()} ({threads()})"
    except OSError:
        pass
    import platform

    return f"{platform.processor() or platform.machine()} ({threads()})"


def threads() -> str:
    n = torch.get_num_threads()
    return f"{n} thread" + ("s" if n != 1 else "")


def peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def setting_label(spec: RunSpec) -> str:
    """'preset cpu, loss=ce', 'tuned, epochs=12' or 'defaults': what the run set over the generator's
    defaults (its dataset preset aside), as the leaderboard names the row; the tuned values of a
    study's best trial are not listed (the record's `tune` field holds them)."""
    tuned = (spec.tune or {}).get("params", {})
    parts = ["tuned"] if spec.tune is not None else []
    parts += [f"preset {spec.preset}"] if spec.preset else []
    parts += [f"config {Path(spec.config_file).name}"] if spec.config_file else []
    parts += [f"{k}={v}" for k, v in spec.overrides.items() if k not in tuned]
    return ", ".join(parts) or "defaults"


def config_fingerprint(resolved: Resolved) -> str:
    """The fingerprint of the run's whole resolved config (records.config_fingerprint), as its record will hold it."""
    return records.config_fingerprint(resolved_config(resolved), resolved.tokenizer.name if resolved.tokenizer else None)


def resolved_config(resolved: Resolved) -> dict[str, dict[str, Any]]:
    """Section -> the resolved values, as the record holds them."""
    return {section: cfg.to_dict(c) for section, c in resolved.configs.items()}


ID_LEVEL_DEFINITION = ("DiffGRM's evaluator's protocol: the same decoded lists scored on semantic IDs with collisions "
                       "left unresolved; a listed ID that equals the target's ID is a hit, duplicate IDs count once (first "
                       "occurrence); not the leaderboard's metric")


def build_record(run_id, spec, resolved, data, split, model, device, valid: Evaluation, test: Evaluation | None, train_seconds: float,
                 sids=None) -> records.Record:
    """The result record of a run; with `test` None (a validation-only run) it has no test metrics,
    ranks or times, and is not checked (records.check asks for them)."""
    gen, ds, tok = resolved.generator, resolved.dataset, resolved.tokenizer
    config = resolved_config(resolved)
    record = records.Record(
        run_id=run_id,
        created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        command=records.command_line(),
        generator=records.Plugin(name=gen.name, package=gen.package, version=gen.version),
        tokenizer=None if tok is None else records.Tokenizer(name=tok.name, package=tok.package, version=tok.version,
                                                             config=config.get("tokenizer")),
        embedding_model=sids.embedding_model if sids is not None else None,
        dataset=records.Dataset(name=ds.name, package=ds.package, version=ds.version, fingerprint=data.fingerprint,
                                users=data.n_users, items=data.n_items, interactions=data.n_interactions,
                                files=list(data.files) if getattr(ds.obj, "local", False) else None,
                                report=dict(data.report) if getattr(ds.obj, "local", False) else None),
        protocol=protocol(resolved, data, split, model, valid if test is None else test),
        seed=spec.seed,
        setting=resolved.setting or setting_label(spec),
        config=config,
        config_origins={section: {key: origin for (sec, key), origin in resolved.origins.items() if sec == section}
                        for section in config},  # the layer that set each key not at its default
        run_control=records.RunControl(resume=spec.resume or None, eval_only=spec.eval_only, checkpoint=spec.checkpoint,
                                       rebuild_ids=spec.rebuild_ids, memory_check=None if spec.memory_check else False),
        config_fingerprint=config_fingerprint(resolved),
        metrics=records.Metrics(valid=valid.metrics, test=None if test is None else test.metrics),
        per_user=None if test is None else records.PerUser(
            encoding="zlib-compressed little-endian int32, base64; rank -1 = not in the list",
            users=records.encode_ints(test.users), test_rank=records.encode_ints(test.ranks)),
        train=records.Train(seconds=round(train_seconds, 3)),
        eval=records.Eval(valid_seconds=round(valid.seconds, 3), test_seconds=None if test is None else round(test.seconds, 3),
                          test_users_per_s=None if test is None else round(test.users_per_s, 1)),
        semantic_ids=None if sids is None else records.SemanticIds(collision_rate=sids.collision_rate, n_digit=sids.n_digit,
                                                                   codebook_size=sids.codebook_size),
        id_level=None if valid.id_ranks is None else records.IdLevel(
            definition=ID_LEVEL_DEFINITION,
            metrics=records.Metrics(valid=valid.id_metrics, test=None if test is None else test.id_metrics),
            test_rank=None if test is None else records.encode_ints(test.id_ranks)),
        beyond=None if test is None else beyond.summarize(test.top, split.train_item_counts(), split.n_users, seconds=test.seconds,
                                                          vectors=beyond.cached_item_vectors(data), invalid_rate=test.invalid_rate),
        notes=list(model.notes) if model.notes else None,
        params=sum(p.numel() for p in model.parameters()),
        peak_memory_mb=round(peak_memory_mb(device), 1),
        device=records.Device(type=device.type, name=device_name(device), processes=dist.world()),
        environment=records.environment(),
        tune=None if spec.tune is None else records.Tune.from_dict(spec.tune, "tune"),
        provenance=records.Provenance(kind="produced"),
    )
    if test is not None:
        records.check(record.to_dict())
    return record


def protocol(resolved: Resolved, data, split, model, evaluated: Evaluation) -> dict[str, Any]:
    """The evaluation protocol, in words, as the record states it; `evaluated` the users of the split the record reports."""
    gcfg = resolved.configs["generator"]
    return {
        "split": "leave-one-out (valid: second-to-last item, test: last item)",
        "ranking": "full ranking over all items" if model.has_scores() else "the generator's ranked list",
        "ties": "pessimistic (equal scores rank above the target)",
        "max_seq_len": split.max_seq_len,
        "timestamps": "yes" if data.times is not None else "none (the order of the items only)",
        "metrics_k": [5, 10, 20],
        "selection": f"best validation {gcfg.val_metric}" if model.trainable and hasattr(gcfg, "val_metric")
        else "none (not trained on validation)",
        "eval_users": int(len(evaluated.users)),
    }
