"""Training and evaluation speed of the generators on one dataset, at their default settings.

    RECBENCH_DATA_MIRROR=../shared/data python benchmarks/generators.py [--dataset beauty] [--device cpu]
        [--generators sasrec llama_rec hstu diff_grm ar_grm] [--preset cpu] [--steps 20] [--eval-users 2048]
        [--set key=value ...]

Each generator runs in a fresh process (so peak memory is its own), with its config resolved as
`recbench run` resolves it (defaults, dataset preset, `--preset` for the generators that have it,
`--set`): `--steps` optimizer steps at its batch size (after 2 warm-up steps) give training
samples/s and the extrapolated epoch time; ranking (or decoding) `--eval-users` validation users
gives evaluation users/s. Peak memory is the process's peak RSS on CPU and the peak allocated GPU
memory on CUDA. Prints the machine. The semantic-ID generators' Beauty presets name their
published embedding model (bge-large); offline, run them with `--preset cpu` or
`--set sent_emb_model=all-MiniLM-L6-v2` (their IDs are built once, then cached).
"""

import argparse
import multiprocessing as mp
import resource
import time


def measure(name: str, dataset: str, preset: str | None, device: str, steps: int, eval_users: int, overrides: dict, out) -> None:
    import torch

    from recbench import semantic_ids
    from recbench.data import Split, prepare
    from recbench.evaluate import evaluate
    from recbench.runner import RunSpec, resolve

    resolved = resolve(RunSpec(name, dataset, preset=preset, overrides=overrides))
    config, ds = resolved.configs["generator"], resolved.dataset.obj
    data = prepare(ds, resolved.configs["dataset"])
    split = Split(data, config.max_seq_len or ds.max_seq_len)
    torch.manual_seed(0)
    dev = torch.device(device)
    if resolved.tokenizer is not None:  # semantic-ID generators: the run's IDs (built once, then cached)
        sids = semantic_ids.build(data, split, resolved.tokenizer, resolved.configs["tokenizer"], resolved.configs["embedding"])
        model = resolved.generator.obj.build(config, split, semantic_ids=sids).to(dev)
    else:
        model = resolved.generator.obj.build(config, split).to(dev)
    users, positions = split.train_positions(config.train_sliding, config.min_hist_len)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr)
    order = torch.randperm(len(users)).numpy()
    bs = config.batch_size

    def step(i):
        idx = order[(i * bs) % len(order):][:bs]
        batch = split.gather(users[idx], positions[idx]).to(dev)
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=config.amp and (dev.type == "cuda" or config.cpu_amp)):
            loss = model(batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    model.train()
    for i in range(2):
        step(i)
    if dev.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for i in range(steps):
        step(i + 2)
    if dev.type == "cuda":
        torch.cuda.synchronize()
    train_s = time.perf_counter() - start
    samples_per_s = steps * bs / train_s

    small = Split(split.data, split.max_seq_len)
    small.eval_users = split.eval_users[:eval_users]
    ev = evaluate(model, small, "valid", batch_size=config.eval_batch_size, device=dev)
    peak = torch.cuda.max_memory_allocated(dev) / 2**20 if dev.type == "cuda" else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out.put({
        "generator": name, "params": sum(p.numel() for p in model.parameters()), "samples": len(users),
        "samples_per_s": samples_per_s, "epoch_s": len(users) / samples_per_s,
        "eval_users_per_s": ev.users_per_s, "peak_mb": peak,
    })


def preset_names(name: str) -> set[str]:
    from recbench import plugins

    return set(plugins.registry().entry("generator", name).obj.named_presets)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="beauty")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--generators", nargs="*", default=["sasrec", "llama_rec", "hstu", "diff_grm", "ar_grm"])
    parser.add_argument("--preset", default=None, help="a named preset of every generator that has it (e.g. cpu)")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--eval-users", type=int, default=2048)
    parser.add_argument("--set", nargs="*", default=[], help="config overrides key=value for every generator")
    args = parser.parse_args()
    overrides = dict(kv.split("=", 1) for kv in args.set)

    import torch

    from recbench.runner import device_name

    print(f"machine: {device_name(torch.device(args.device))}; dataset: {args.dataset}; torch {torch.__version__}")
    print(f"{'generator':<10} {'params':>10} {'samples/s':>10} {'epoch':>9} {'eval users/s':>13} {'peak MB':>8}")
    ctx = mp.get_context("spawn")
    for name in args.generators:
        queue = ctx.Queue()
        proc = ctx.Process(target=measure, args=(name, args.dataset, args.preset if args.preset in preset_names(name) else None, args.device, args.steps, args.eval_users, overrides, queue))
        proc.start()
        proc.join()
        if proc.exitcode != 0:
            print(f"{name:<10} failed (exit {proc.exitcode})")
            continue
        r = queue.get()
        epoch = f"{r['epoch_s']:.1f} s" if r["epoch_s"] < 120 else f"{r['epoch_s'] / 60:.1f} min"
        print(f"{name:<10} {r['params']:>10,} {r['samples_per_s']:>10,.0f} {epoch:>9} {r['eval_users_per_s']:>13,.0f} {r['peak_mb']:>8,.0f}")


if __name__ == "__main__":
    main()
