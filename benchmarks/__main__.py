"""`python -m benchmarks`: every item side by side in one run → benchmarks/RESULTS.md."""

from __future__ import annotations

import argparse
import datetime
import tempfile
import time
from pathlib import Path

import torch

from benchmarks import memory, ranking, sweep, training
from benchmarks.report import render
from benchmarks.timing import load_average, machine
from fragile import models
from fragile.atomic import write_text
from fragile.data import load_split
from fragile.devices import to_device
from fragile.params import load_params

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--repeats", type=int, default=3, help="timed repeats per case, interleaved (default 3)")
    parser.add_argument("--train-images", type=int, default=640, help="training images per timed epoch (item 4)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "RESULTS.md")
    parser.add_argument("--sweep-examples", type=int, default=1000, help="test examples for item 1 (default 1000)")
    parser.add_argument("--rank-examples", type=int, default=None,
                        help="rank-split examples for items 2-3 (default rank.max_examples)")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: one repeat on a few examples, no memory runs; prints, writes only --out")
    args = parser.parse_args()
    if args.quick:
        args.repeats, args.train_images = 1, 128
        args.out = args.out if "--out" in " ".join(__import__("sys").argv) else None
    sizes = {"rank": 32, "sweep": 64} if args.quick else {"rank": args.rank_examples, "sweep": args.sweep_examples}
    started = time.perf_counter()
    facts: dict[str, object] = {"machine": machine(), "date": datetime.datetime.now(datetime.UTC).isoformat(
        timespec="seconds"), "repeats": args.repeats, "load_before": load_average(),
        "command": "python -m benchmarks " + " ".join(__import__("sys").argv[1:])}
    params = load_params(ROOT / "params.yaml")
    with tempfile.TemporaryDirectory(prefix="fragile-bench-") as tmp:
        scratch = Path(tmp)
        print("5. memory: the default run, stage by stage", flush=True)
        facts["stage_peaks"] = [] if args.quick else memory.default_run(scratch)
        trained = ROOT / "models" / "original" / f"epoch_{params.train.checkpoints[-1]}.pt"
        data = ROOT / "data" / "prepared"
        if trained.exists() and (data / "manifest.json").exists():
            facts["model_source"] = f"the pipeline's own {trained.relative_to(ROOT)} (from `dvc repro`)"
        else:
            trained, data = scratch / "models" / "original" / "epoch_1.pt", scratch / "data" / "prepared"
            facts["model_source"] = ("no pipeline outputs found, so the model trained by item 5's stage run "
                                     "(default params, one epoch)")
        model = models.load(trained)
        to_device(model, torch.device("cpu"))
        model.eval()

        print("2-3. ranking: naive hook loop, exact, taylor", flush=True)
        val = load_split(data, params.rank.split).head(sizes["rank"] or params.rank.max_examples)
        facts["ranking"] = ranking.run(model, val, params.rank.batch_size, params.rank.drop, args.repeats)
        exact = facts["ranking"]["exact_sets"]  # type: ignore[index]

        print("1. FGSM ε-sweep vs torchattacks", flush=True)
        test = load_split(data, "test").head(sizes["sweep"])
        facts["sweep"] = sweep.run(model, test, params.attack.batch_size, exact[0], exact[1], args.repeats)

        print("4. training throughput", flush=True)
        facts["training"] = training.run(data, ROOT / "params.yaml", args.train_images, args.repeats)

    print("5. memory: paper scale", flush=True)
    facts["paper_peak"] = None if args.quick else memory.paper_scale()
    facts["load_after"] = load_average()
    facts["total_s"] = time.perf_counter() - started
    text = render(facts)
    if args.out is not None:
        write_text(args.out, text)
    print(text)


if __name__ == "__main__":
    main()
