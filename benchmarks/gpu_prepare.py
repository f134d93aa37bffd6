"""Copy what a GPU check needs from this machine's caches into a folder inside the working tree.

    RECBENCH_DATA_MIRROR=../shared/data python -m benchmarks.gpu_prepare [DIR]    (default: .gpu-data)

A lent GPU machine starts bare and reaches no data host: the prepared dataset and the semantic IDs
of the runs `python -m benchmarks.gpu` plans (benchmarks.gpu_plan) must travel with the working
tree. This resolves each planned run as `recbench run` would, prepares its data and loads (or, on
a miss, builds) its semantic IDs here, with RECBENCH_DATA the cache they come from, then copies
exactly the files the runs read into DIR/prepared/... and DIR/semantic_ids/..., the layout of
RECBENCH_DATA (recbench.paths), and the raw files (whose hash keys the prepared data) from
RECBENCH_DATA_MIRROR into DIR/mirror/. The item-text embeddings are not copied: the IDs are cached,
so the runs never embed. The GPU run points RECBENCH_DATA at DIR and RECBENCH_DATA_MIRROR at DIR/mirror. DIR is git-ignored (.gpu-data/) and
must stay under 64 MiB, the most a working tree carries; its size is printed, and a larger one is
an error.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from benchmarks.gpu_plan import DATASET, GENERATORS, run_spec

LIMIT_MIB = 64


def needed_files(names: list[str], tiny: bool = False) -> list[Path]:
    """The cache files (under recbench.paths.data_dir()) that the planned runs of `names` read (`tiny`: the CPU mode's runs)."""
    from recbench import paths, pipeline
    from recbench.runner import resolve

    found: list[Path] = []
    for name in names:
        resolved = resolve(run_spec(name, "cpu", tiny=tiny))
        found += [Path(f) for f in raw_files(resolved.dataset.obj)]
        data, split = pipeline.data_of(resolved)
        found += sorted((paths.data_dir() / "prepared" / data.name / data.fingerprint).iterdir())
        sids = pipeline.semantic_ids_of(resolved, data, split, device="cpu", progress=False, log=print)
        if sids is not None:
            found.append(Path(sids.path))
    return list(dict.fromkeys(found))


def raw_files(dataset) -> list:
    """The raw files `dataset` is prepared from (its fingerprint hashes them, so a run reads them even
    where the prepared data is cached)."""
    from recbench.data import Source

    files = dataset.locate(Source(dataset.name))
    return list(files.values()) if isinstance(files, dict) else list(files)


def copy(files: list[Path], source: Path, mirror: Path | None, target: Path) -> int:
    """Copy `files` to the same relative places under `target`: those under `source` (RECBENCH_DATA)
    as they lie, those under `mirror` (RECBENCH_DATA_MIRROR) under target/mirror; the bytes copied."""
    total = 0
    for path in files:
        if mirror is not None and path.resolve().is_relative_to(mirror.resolve()):
            dest = target / "mirror" / path.resolve().relative_to(mirror.resolve())
        else:
            dest = target / path.relative_to(source)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, dest)
        total += dest.stat().st_size
    return total


def folder_size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dir", nargs="?", type=Path, default=Path(".gpu-data"), help="where the caches go (default: .gpu-data)")
    parser.add_argument("--generators", nargs="*", default=list(GENERATORS), help="the planned runs whose data is copied")
    parser.add_argument("--tiny", action="store_true", help="the CPU mode's runs (the same IDs on Beauty; smaller ones on another dataset)")
    args = parser.parse_args(argv)
    from recbench import paths

    source = paths.data_dir()
    target = args.dir.resolve()
    if target == source.resolve():
        parser.error(f"{target} is RECBENCH_DATA itself; name another folder")
    files = needed_files(args.generators, args.tiny)
    copied = copy(files, source, paths.mirror_dir(), target)
    size = folder_size(target)
    print(f"{len(files)} files ({copied / 2**20:.1f} MiB) of {DATASET} copied from {source} to {target}; "
          f"the folder holds {size / 2**20:.1f} MiB (limit {LIMIT_MIB} MiB)")
    if size > LIMIT_MIB * 2**20:
        print(f"error: {target} holds more than {LIMIT_MIB} MiB, more than a working tree carries; remove what the plan does not need",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
