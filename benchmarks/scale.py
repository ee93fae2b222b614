"""Throughput of protect on a Dask cluster against the local pool, and what a catalogue would cost.

    python benchmarks/scale.py [--files 8] [--size 2048] [--tiny 48] [--repeat 2] [--json FILE]

Needs the ``dask`` extra.  On the same set (``--files`` copies of the
``--size`` px illustration collage of ``benchmarks/speed.py``, 4.2 MP at
2048 px, PNG), with the same key and settings, it measures:

* the local batch (``run_batch``): 1 worker (in process) and 2 workers (the
  process pool);
* the cluster path (``protect.distributed.protect_many``) on a
  ``distributed.LocalCluster`` of 1 and 2 worker processes (1 thread each):
  images/s, MP/s and the speed-up of 2 workers over 1 (goal >= 1.8x; only
  meaningful with 2 free cores: the load average is printed with every line);
* the per-image overhead of the cluster path against the local pool, on
  ``--tiny`` 64x64 images, where protecting costs almost nothing and the
  time per image is the machinery's (scheduling, transfer, result);
* the fixed cost of a cluster run (connect, worker plugin, key check, plan),
  from a rerun in which every file is up to date;
* a projection from these figures: core-hours, and cores for a deadline, for
  1 million and 1 billion 4 MP images.

Every timed run rewrites all outputs (``overwrite``) after a warm-up run, so
numba's compiled kernels are loaded everywhere; each figure is the best of
``--repeat`` runs (a shared machine only ever makes runs slower).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))

from speed import illustration  # noqa: E402

from protect.batch import Options, run_batch, warm_jit  # noqa: E402
from protect.files import discover  # noqa: E402
from protect.pipeline import Settings  # noqa: E402

KEY = "scale-benchmark-key"


def load() -> str:
    return f"load {os.getloadavg()[0]:.1f}"


def make_set(folder: Path, n: int, size: int) -> float:
    """``n`` PNG copies of the collage, each a little shifted (different content); total MP."""
    folder.mkdir(parents=True)
    base = illustration(size)
    for i in range(n):
        Image.fromarray(np.roll(base, 37 * i, axis=1)).save(folder / f"img{i:03d}.png")
    return n * size * size / 1e6


def make_tiny(folder: Path, n: int) -> None:
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(folder / f"t{i:03d}.png")


def own_cpu() -> float:
    """CPU seconds of this process and of its finished children (the local pool's workers)."""
    ch = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + ch.ru_utime + ch.ru_stime


def best(fn, repeat: int, cpu=own_cpu) -> tuple[float, float]:
    """(wall, CPU) seconds of the fastest of ``repeat`` runs; CPU = what ``cpu()`` counts."""
    runs = []
    for _ in range(repeat):
        c0, t0 = cpu(), time.perf_counter()
        fn()
        runs.append((time.perf_counter() - t0, cpu() - c0))
    return min(runs)


def local_time(src: Path, out: Path, workers: int, repeat: int) -> tuple[float, float]:
    options = Options(Settings(key=KEY))

    def run() -> None:
        rep = run_batch(list(discover([src], out=out)), options, workers=workers, overwrite=True)
        assert rep.protected and not rep.failed, rep.summary()

    run()  # warm-up (and the outputs exist)
    return best(run, repeat)


def cluster_times(src: Path, tiny: Path, out: Path, workers: int, repeat: int) -> dict[str, tuple[float, float]]:
    import distributed

    from protect.distributed import protect_many

    env = {"PROTECT_KEY": KEY, "OMP_NUM_THREADS": "1"}
    with distributed.LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None,
                                  silence_logs=logging.CRITICAL, env=env) as cluster, \
            distributed.Client(cluster) as client:

        def run(folder: Path, dest: Path, overwrite: bool = True) -> None:
            rep = protect_many([folder], out=dest, settings=Settings(key=KEY), client=client, overwrite=overwrite)
            assert not rep.failed, rep.summary()

        def cpu() -> float:  # the workers' CPU seconds (their processes live on) and the client's
            return sum(client.run(time.process_time).values()) + time.process_time()

        run(tiny, out / "tiny")  # warm-up: plugin set up, kernels loaded on every worker
        run(src, out / "set")
        return {
            "set": best(lambda: run(src, out / "set"), repeat, cpu),
            "tiny": best(lambda: run(tiny, out / "tiny"), repeat, cpu),
            "fixed": best(lambda: run(tiny, out / "tiny", overwrite=False), repeat, cpu),
        }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--files", type=int, default=8, help="images in the set")
    ap.add_argument("--size", type=int, default=2048, help="side of each image (px)")
    ap.add_argument("--tiny", type=int, default=48, help="64x64 images for the per-image overhead")
    ap.add_argument("--repeat", type=int, default=2, help="runs per figure (the best is kept)")
    ap.add_argument("--json", type=Path, help="also write the figures here")
    args = ap.parse_args(argv)
    try:
        import distributed  # noqa: F401
    except ImportError:
        print("benchmarks/scale.py needs the dask extra: pip install 'protect-art[dask]'", file=sys.stderr)
        return 2

    warm_jit()
    fig: dict = {"files": args.files, "size": args.size, "tiny": args.tiny, "cores": os.cpu_count(),
                 "nice": os.nice(0)}
    with tempfile.TemporaryDirectory(prefix="protect-scale-") as tmp:
        tmp = Path(tmp)
        mp = make_set(tmp / "set", args.files, args.size)
        mp_each = mp / args.files
        make_tiny(tmp / "tiny", args.tiny)
        fig["mp"] = mp
        print(f"set: {args.files} PNG images of {args.size}x{args.size} ({mp_each:.1f} MP each, {mp:.1f} MP); "
              f"{args.tiny} tiny 64x64 images; {os.cpu_count()} cores, nice {fig['nice']}, {load()}")
        rows = {}

        def line(name: str, wall: float, cpu: float, tiny: float, extra: str = "") -> None:
            print(f"{name:<24} {args.files / wall:5.2f} images/s  {mp / wall:5.2f} MP/s  ({wall:6.2f} s wall, "
                  f"{cpu / args.files:5.2f} CPU-s per image; tiny {1000 * tiny / args.tiny:5.1f} ms/image{extra})  "
                  f"[{load()}]")

        for w in (1, 2):
            t, tc = local_time(tmp / "set", tmp / f"local{w}", w, args.repeat)
            tt, _ = local_time(tmp / "tiny", tmp / f"local{w}-tiny", w, args.repeat)
            rows[f"local {w}"] = {"set": t, "set_cpu": tc, "tiny": tt}
            line(f"local pool, {w} worker{'s' if w > 1 else ''}:", t, tc, tt)
        for w in (1, 2):
            c = cluster_times(tmp / "set", tmp / "tiny", tmp / f"cluster{w}", w, args.repeat)
            rows[f"cluster {w}"] = {"set": c["set"][0], "set_cpu": c["set"][1], "tiny": c["tiny"][0],
                                    "fixed": c["fixed"][0]}
            line(f"Dask cluster, {w} worker{'s' if w > 1 else ''}:", c["set"][0], c["set"][1], c["tiny"][0],
                 f"; fixed cost of a run {c['fixed'][0]:.2f} s")
        for w in (1, 2):
            for k in (1, 2):
                same = tmp / f"cluster{w}" / "set"
                other = tmp / f"local{k}"
                for p in sorted(other.glob("*.png")):
                    if p.read_bytes() != (same / p.name).read_bytes():
                        print(f"ERROR: {p.name} differs between the local and the cluster run", file=sys.stderr)
                        return 1
        print("outputs: every cluster output is byte-identical to the local run's")
        fig["runs"] = rows

    local1, local2 = rows["local 1"]["set"], rows["local 2"]["set"]
    c1, c2 = rows["cluster 1"]["set"], rows["cluster 2"]["set"]
    speedup = c1 / c2
    per_image_overhead = (rows["cluster 2"]["tiny"] - rows["local 2"]["tiny"]) / args.tiny
    cpu_ratio = rows["cluster 2"]["set_cpu"] / rows["cluster 1"]["set_cpu"]
    print(f"speed-up with 2 workers (wall): cluster {speedup:.2f}x (goal >= 1.8), local pool {local1 / local2:.2f}x; "
          f"CPU per image with 2 workers / with 1: {cpu_ratio:.2f} (1.00 = no work lost to parallelism)")
    print(f"cluster vs local, 1 worker on the set: {c1 / local1:.3f}x the time "
          f"({1000 * (c1 - local1) / args.files:+.0f} ms per {mp_each:.1f} MP image)")
    print(f"per-image overhead of the cluster path over the local pool (2 workers, tiny images): "
          f"{1000 * per_image_overhead:+.1f} ms")

    # projection from CPU seconds, not wall time: on a shared machine the wall clock measures the
    # neighbours too, the CPU time what one 4 MP image costs a core (workers and client, 1-worker cluster)
    core_s_4mp = rows["cluster 1"]["set_cpu"] / args.files * 4.0 / mp_each
    efficiency = min(1.0, 1.0 / cpu_ratio)
    print(f"projection: {core_s_4mp:.2f} CPU-seconds per 4 MP image on the cluster path (measured here), "
          f"{100 * efficiency:.0f} % of it useful at 2 workers")
    proj = {}
    for label, n, hours in (("1 million", 1e6, 24.0), ("1 billion", 1e9, 30 * 24.0)):
        core_h = n * core_s_4mp / 3600 / efficiency
        cores = core_h / hours
        proj[label] = {"core_hours": core_h, "cores": cores, "deadline_h": hours}
        print(f"  {label:>9} 4 MP images: {core_h:,.0f} core-hours; {cores:,.0f} cores for "
              f"{'a day' if hours == 24 else '30 days'} ({cores / 64:,.1f} machines of 64 cores)")
    fig.update(speedup=speedup, cpu_ratio=cpu_ratio, overhead_s=per_image_overhead, core_s_4mp=core_s_4mp,
               projection=proj, load_end=os.getloadavg()[0])
    if args.json is not None:
        args.json.write_text(json.dumps(fig, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
