"""Training and evaluation speed of the generators on one dataset, at their default settings.

    RECBENCH_DATA_MIRROR=../shared/data python benchmarks/generators.py [--dataset beauty] [--device cpu]
        [--generators sasrec llama_rec hstu diff_grm ar_grm] [--preset cpu] [--steps 20] [--eval-users 2048]
        [--set key=value ...] [--compare-buckets]

Each generator runs in a fresh process (so peak memory is its own), with its config resolved as
`recbench run` resolves it (defaults, dataset preset, `--preset` for the generators that have it,
`--set`): `--steps` optimizer steps at its batch size (after 2 warm-up steps) give training
samples/s and the extrapolated epoch time, with batches drawn as the trainer draws them (plain
shuffling, or with `bucket_pool` > 0 length-bucketed batches trimmed to their longest history, see
recbench.data.buckets); `--compare-buckets` also times, in the same process and on the same model,
plain shuffling without trimming against bucketed, trimmed batches (the config's `bucket_pool`, or
32 where that is 0), the two alternating in chunks of steps, and prints both, their ratio and the
share of padding in the batches' histories;
ranking (or decoding) `--eval-users` validation users
gives evaluation users/s. Peak memory is the process's peak RSS on CPU and the peak allocated GPU
memory on CUDA. Prints the machine. The semantic-ID generators' Beauty presets name their
published embedding model (bge-large); offline, run them with `--preset cpu` or
`--set sent_emb_model=all-MiniLM-L6-v2` (their IDs are built once, then cached).
"""

import argparse
import multiprocessing as mp
import resource
import time


def measure(name: str, dataset: str, preset: str | None, device: str, steps: int, eval_users: int, overrides: dict, out,
            compare: bool = False) -> None:
    import torch

    from recbench import pipeline
    from recbench.data import Split, buckets
    from recbench.evaluate import evaluate
    from recbench.runner import RunSpec, resolve

    resolved = resolve(RunSpec(name, dataset, preset=preset, device=device, overrides=overrides))  # cpu_amp=auto decided for `device`
    config = resolved.configs["generator"]
    dev = torch.device(device)
    pieces = pipeline.build(resolved, device=dev, seed=0)  # the model a run would train (semantic IDs built once, then cached)
    split, model = pieces.split, pieces.model
    users, positions = split.train_positions(config.train_sliding, config.min_hist_len)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr)
    bs = config.batch_size
    autocast = config.amp and (dev.type == "cuda" or config.cpu_amp is True)
    lengths = split.history_lengths(users, positions)

    def epoch_batches(pool: int) -> list:
        """One epoch's batches as the trainer draws them: a plain permutation (pool 0), or length-bucketed."""
        if pool:
            return buckets.epoch_batches(lengths, bs, pool, seed=0, epoch=1)
        order = torch.randperm(len(users)).numpy()
        return [order[i : i + bs] for i in range(0, len(order), bs)]

    class Sampler:
        """Training steps on one epoch's batches drawn as the trainer draws them; times the steps of `run`."""

        def __init__(self, pool: int):
            self.pool, self.batches, self.i = pool, epoch_batches(pool), 0
            self.seconds = self.cells = self.padding = self.samples = 0

        def run(self, n: int, timed: bool = True) -> None:
            model.train()
            start = time.perf_counter()
            for _ in range(n):
                idx = self.batches[self.i % len(self.batches)]
                self.i += 1
                batch = split.gather(users[idx], positions[idx], trim=self.pool > 0).to(dev)
                if timed:
                    self.cells += batch.history.numel()
                    self.padding += int((batch.history == 0).sum())
                    self.samples += len(idx)
                with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=autocast):
                    loss = model(batch)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
            if dev.type == "cuda":
                torch.cuda.synchronize()
            if timed:
                self.seconds += time.perf_counter() - start

        def result(self) -> tuple[float, float]:
            """(training samples/s, share of padding in the timed batches' histories)."""
            return self.samples / self.seconds, self.padding / self.cells

    trained = Sampler(config.bucket_pool)  # as the trainer trains
    comparison = None
    if not compare:
        trained.run(2, timed=False)  # warm-up
        trained.run(steps)
    else:
        # the two samplers alternate (warm-up, then the timed steps in 4 chunks), so a change in the
        # machine's load during the run affects both alike
        pool = config.bucket_pool or 32
        other = Sampler(0 if config.bucket_pool else pool)
        plain, bucketed = (other, trained) if config.bucket_pool else (trained, other)
        for _ in range(2):
            plain.run(2, timed=False)
            bucketed.run(2, timed=False)
        for chunk in range(4):
            n = steps // 4 + (chunk < steps % 4)
            plain.run(n)
            bucketed.run(n)
        comparison = {"pool": pool, "plain": plain.result(), "bucketed": bucketed.result(), "autocast": autocast,
                      "threads": torch.get_num_threads(), "batch_size": bs, "max_seq_len": split.max_seq_len}
    samples_per_s = trained.result()[0]

    small = Split(split.data, split.max_seq_len)
    small.eval_users = split.eval_users[:eval_users]
    ev = evaluate(model, small, "valid", batch_size=config.eval_batch_size, device=dev)
    peak = torch.cuda.max_memory_allocated(dev) / 2**20 if dev.type == "cuda" else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out.put({
        "generator": name, "params": sum(p.numel() for p in model.parameters()), "samples": len(users),
        "samples_per_s": samples_per_s, "epoch_s": len(users) / samples_per_s,
        "eval_users_per_s": ev.users_per_s, "peak_mb": peak, "comparison": comparison,
    })


def preset_names(name: str) -> set[str]:
    from recbench import registry as plugin_registry

    return set(plugin_registry.registry().entry("generator", name).obj.named_presets)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="beauty")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--generators", nargs="*", default=["sasrec", "llama_rec", "hstu", "diff_grm", "ar_grm"])
    parser.add_argument("--preset", default=None, help="a named preset of every generator that has it (e.g. cpu)")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--eval-users", type=int, default=2048)
    parser.add_argument("--set", nargs="*", default=[], help="config overrides key=value for every generator")
    parser.add_argument("--compare-buckets", action="store_true",
                        help="also time plain shuffling against length-bucketed, trimmed batches (bucket_pool), same process")
    args = parser.parse_args()
    overrides = dict(kv.split("=", 1) for kv in args.set)

    import torch

    from recbench.runner import device_name

    print(f"machine: {device_name(torch.device(args.device))}; dataset: {args.dataset}; torch {torch.__version__}")
    print(f"{'generator':<10} {'params':>10} {'samples/s':>10} {'epoch':>9} {'eval users/s':>13} {'peak MB':>8}")
    ctx = mp.get_context("spawn")
    comparisons = []
    for name in args.generators:
        queue = ctx.Queue()
        preset = args.preset if args.preset in preset_names(name) else None
        proc = ctx.Process(target=measure, args=(name, args.dataset, preset, args.device, args.steps, args.eval_users, overrides, queue,
                                                 args.compare_buckets))
        proc.start()
        proc.join()
        if proc.exitcode != 0:
            print(f"{name:<10} failed (exit {proc.exitcode})")
            continue
        r = queue.get()
        epoch = f"{r['epoch_s']:.1f} s" if r["epoch_s"] < 120 else f"{r['epoch_s'] / 60:.1f} min"
        print(f"{name:<10} {r['params']:>10,} {r['samples_per_s']:>10,.0f} {epoch:>9} {r['eval_users_per_s']:>13,.0f} {r['peak_mb']:>8,.0f}")
        if r["comparison"]:
            comparisons.append((name, r["comparison"]))
    if comparisons:
        print("\ntraining samples/s: plain shuffling (full-length batches) vs bucket_pool (length-bucketed batches trimmed to their longest history)")
        print(f"{'generator':<10} {'batch':>6} {'L':>4} {'pool':>5} {'bf16':>5} {'threads':>7} {'plain':>9} {'padding':>8} "
              f"{'bucketed':>9} {'padding':>8} {'ratio':>6}")
        for name, c in comparisons:
            (plain, plain_pad), (bucketed, bucketed_pad) = c["plain"], c["bucketed"]
            print(f"{name:<10} {c['batch_size']:>6} {c['max_seq_len']:>4} {c['pool']:>5} {'on' if c['autocast'] else 'off':>5} {c['threads']:>7} "
                  f"{plain:>9,.0f} {plain_pad:>8.0%} {bucketed:>9,.0f} {bucketed_pad:>8.0%} {bucketed / plain:>5.2f}x")


if __name__ == "__main__":
    main()
