"""Time to prepare a dataset from its raw files and to load it once prepared.

    RECBENCH_DATA_MIRROR=../shared/data python benchmarks/prepare_datasets.py [beauty sports ml-100k] [--repeat 3]

Prepares into a temporary RECBENCH_DATA each time (a cold prepare: read, sort, map, write the
cache), then loads the cached form. Targets on a 2-core machine for Beauty: prepare <= 10 s,
load <= 1 s. Prints the machine it ran on.
"""

import argparse
import os
import statistics
import tempfile
import time

import torch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("datasets", nargs="*", default=["beauty"])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    from recbench import registry as plugin_registry
    from recbench.data import prepare
    from recbench.runner import device_name

    registry = plugin_registry.registry()
    print(f"machine: {device_name(torch.device('cpu'))}, {os.cpu_count()} cores")
    print(f"mirror: {os.environ.get('RECBENCH_DATA_MIRROR', '(unset)')}")
    print(f"{'dataset':<10} {'users':>8} {'items':>8} {'interactions':>13} {'prepare s':>10} {'load s':>8}")
    for name in args.datasets:
        dataset = registry.get("dataset", name)
        cold, warm = [], []
        for _ in range(args.repeat):
            with tempfile.TemporaryDirectory() as tmp:
                os.environ["RECBENCH_DATA"] = tmp
                t = time.perf_counter()
                data = prepare(dataset, dataset.Config())
                cold.append(time.perf_counter() - t)
                t = time.perf_counter()
                prepare(dataset, dataset.Config())
                warm.append(time.perf_counter() - t)
        print(f"{name:<10} {data.n_users:>8,} {data.n_items:>8,} {data.n_interactions:>13,} "
              f"{statistics.median(cold):>10.2f} {statistics.median(warm):>8.3f}")


if __name__ == "__main__":
    main()
