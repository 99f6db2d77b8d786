"""`python -m benchmarks`: every item side by side in one run → benchmarks/RESULTS.md."""

from __future__ import annotations

import argparse
import datetime
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch

from benchmarks import floor, memory, pgd, ranking, sweep, training
from benchmarks.report import render
from benchmarks.timing import CpuClock, load_average, machine
from fragile import models
from fragile.atomic import write_text
from fragile.data import load_split
from fragile.devices import to_device
from fragile.layout import checkpoint_file
from fragile.params import load_params

ROOT = Path(__file__).resolve().parent.parent


def _memory(scratch: Path) -> tuple[list[memory.Peak], memory.Peak]:
    print("5. memory: the default run, stage by stage", flush=True)
    peaks = memory.default_run(scratch)
    print("5. memory: paper scale", flush=True)
    return peaks, memory.paper_scale()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--repeats", type=int, default=5, help="timed repeats per case, interleaved (default 5)")
    parser.add_argument("--train-images", type=int, default=0,
                        help="training images per timed epoch (item 4; default 0: the whole train split)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "RESULTS.md")
    parser.add_argument("--sweep-examples", type=int, default=1000, help="test examples for item 1 (default 1000)")
    parser.add_argument("--rank-examples", type=int, default=None,
                        help="rank-split examples for items 2-3 (default rank.max_examples)")
    parser.add_argument("--concurrent-memory", action="store_true",
                        help="run item 5 (child processes; RSS does not depend on load) while items 1-4 are timed, "
                             "to save time on a busy machine; it adds to the load the timings see")
    parser.add_argument("--skip-floor", action="store_true",
                        help="leave out item 7 (the compute floor: the default run twice, as processes and in-process)")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: one repeat on a few examples, no memory runs; prints, writes only --out")
    args = parser.parse_args()
    if args.quick:
        args.repeats, args.train_images = 1, 128
        args.out = args.out if "--out" in " ".join(__import__("sys").argv) else None
    sizes = {"rank": 32, "sweep": 64} if args.quick else {"rank": args.rank_examples, "sweep": args.sweep_examples}
    started, clock = time.perf_counter(), CpuClock.now()
    facts: dict[str, object] = {"machine": machine(), "date": datetime.datetime.now(datetime.UTC).isoformat(
        timespec="seconds"), "repeats": args.repeats, "load_before": load_average(),
        "command": "python -m benchmarks " + " ".join(__import__("sys").argv[1:])}
    params = load_params(ROOT / "params.yaml")
    with tempfile.TemporaryDirectory(prefix="fragile-bench-") as tmp, ThreadPoolExecutor(1) as pool:
        scratch = Path(tmp)
        trained = ROOT / "models" / "original" / checkpoint_file(params.train.checkpoints[-1])
        data = ROOT / "data" / "prepared"
        own_outputs = trained.exists() and (data / "manifest.json").exists()
        if args.quick and not own_outputs:  # item 5 is what trains a model when there is none
            raise SystemExit(f"error: --quick needs the pipeline's {trained.relative_to(ROOT)}; run `dvc repro` first")
        memory_run = None if args.quick else pool.submit(_memory, scratch)
        if memory_run is not None and not (args.concurrent_memory and own_outputs):
            memory_run.result()  # item 5 first, alone (and its checkpoint may be the one we need)
        if own_outputs:
            facts["model_source"] = f"the pipeline's own {trained.relative_to(ROOT)} (from `dvc repro`)"
        else:
            trained, data = scratch / "models" / "original" / "epoch_1.pt", scratch / "data" / "prepared"
            facts["model_source"] = ("no pipeline outputs found, so the model trained by item 5's stage run "
                                     "(default params, one epoch)")
        model = models.load(trained)
        to_device(model, torch.device("cpu"))
        model.eval()

        print("2-3. ranking: naive hook loop, exact, taylor, hybrid", flush=True)
        full = load_split(data, params.rank.split).head(params.rank.max_examples)
        val = full.head(sizes["rank"] or params.rank.max_examples)
        facts["ranking"] = ranking.run(model, val, params.rank.batch_size, params.rank.drop, args.repeats,
                                       None if args.quick else full, params.rank)
        exact = facts["ranking"]["exact_sets"]  # type: ignore[index]

        print("1. FGSM ε-sweep vs torchattacks", flush=True)
        test = load_split(data, "test").head(sizes["sweep"])
        facts["sweep"] = sweep.run(model, test, params.attack.batch_size, exact[0], exact[1], args.repeats,
                                   list(params.attack.epsilons))

        print("6. PGD vs torchattacks", flush=True)
        facts["pgd"] = pgd.run(model, test, params.attack.batch_size, params.epsilon, params.attack.pgd_steps,
                               params.attack.pgd_step_size, params.seed, args.repeats)

        print("4. training throughput", flush=True)
        facts["training"] = training.run(data, ROOT / "params.yaml", args.train_images, args.repeats)
        facts["stage_peaks"], facts["paper_peak"] = memory_run.result() if memory_run else ([], None)
        if not args.skip_floor:
            print("7. compute floor of the default run", flush=True)
            facts["floor"] = floor.run(scratch / "floor", floor.quick_params() if args.quick else floor.default_params(),
                                       walls=not args.quick, budget=0.2 if args.quick else 3.0, quick=args.quick)
    facts["memory_concurrent"] = bool(args.concurrent_memory and own_outputs and not args.quick)
    facts["load_after"] = load_average()
    facts["others_cpu_share"] = clock.others_share(CpuClock.now())
    facts["total_s"] = time.perf_counter() - started
    text = render(facts)
    if args.out is not None:
        write_text(args.out, text)
    print(text)


if __name__ == "__main__":
    main()
