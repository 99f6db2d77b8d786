"""Several processes: two real gloo processes on CPU (DDP training, sharded evaluation) against
one process, plus the launch and sharding rules."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from fragile import distributed, models
from fragile.comparison import SweepResult
from fragile.data import Split
from fragile.distributed import Context
from fragile.errors import FragileError

ROOT = Path(__file__).resolve().parents[1]

PARAMS = {
    "seed": 0,
    # The smallest run whose BatchNorm statistics settle enough for a held-out accuracy well
    # above chance (0.1): 24 steps of 32 images.
    "train": {"epochs": 2, "checkpoints": [2], "batch_size": 32, "lr": 0.02, "max_examples": 384, "nproc": 2},
    "rank": {"max_examples": 50, "batch_size": 25, "compare": True},
    "attack": {"epsilons": [0.0, 0.1], "max_examples": 60, "batch_size": 20},  # 3 batches: 1 + 2
    "evaluate": {"max_examples": 40, "batch_size": 20},
}


def _write(path: Path, params: dict) -> Path:
    path.write_text(yaml.safe_dump(params), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Path:
    """mnist5k trained by one process (single/) and by two (dist/); the two-process checkpoint
    then ranked, attacked and evaluated by two processes (dist/) and by one (single/)."""
    from stages import attack_target, evaluate, prepare, rank, train

    work = tmp_path_factory.mktemp("distributed")
    params = _write(work / "params.yaml", PARAMS)
    one = _write(work / "one.yaml", {**PARAMS, "train": {**PARAMS["train"], "nproc": 1}})
    data, single = work / "data", work / "single"
    prepare.main(out=data, params=one)
    train.main(data=data, models_dir=single / "models", live=single / "live", params=one,
               resume_dir=single / "resume")

    env = {k: v for k, v in os.environ.items() if k not in (distributed.TORCHRUN_ARGS_VAR, "WORLD_SIZE")}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), str(ROOT), env.get("PYTHONPATH", "")])
    command = distributed.torchrun_command(2, [str(ROOT / "tests" / "distributed_stages.py"), str(work)])
    done = subprocess.run(command, cwd=work, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    (work / "torchrun.log").write_text(done.stdout, encoding="utf-8")

    checkpoint = work / "dist" / "models" / "epoch_2.pt"
    rank.main(model=checkpoint, data=data, kernels_csv=single / "rank.csv", sets=single / "rank.json",
              outcomes=single / "rank.npz", params=params)
    attack_target.main(model=checkpoint, data=data, sets=single / "rank.json", curve=single / "attack.csv",
                       summary=single / "attack.json", distances=single / "attack.npz", params=params)
    evaluate.main(model=checkpoint, hardened=single / "models" / "epoch_2.pt", data=data, sets=single / "rank.json",
                  attack=single / "attack.json", results=single / "evaluate.json", curves=single / "evaluate.csv", params=params)
    return work


def test_two_process_training_gives_a_checkpoint_like_one_process(runs):
    one, meta_one = models.load_with_meta(runs / "single" / "models" / "epoch_2.pt")
    two, meta_two = models.load_with_meta(runs / "dist" / "models" / "epoch_2.pt")
    shapes = lambda m: {k: tuple(v.shape) for k, v in m.state_dict().items()}  # noqa: E731
    assert shapes(one) == shapes(two)
    assert (meta_one["params"]["train"]["nproc"], meta_two["params"]["train"]["nproc"]) == (1, 2)
    assert not torch.equal(one.net.conv1.weight, two.net.conv1.weight)  # really trained apart

    # Same seeded batches, split in two: only BatchNorm's per-process statistics differ, so the
    # accuracy over the last epoch's batches (summed over both processes; about 0.8 here, 0.1 is
    # chance) must be close. The held-out accuracy after 24 steps hangs on BatchNorm running
    # statistics that have not settled yet: it only has to be clearly above chance.
    live_one, live_two = (json.loads((runs / d / "live" / "metrics.json").read_text()) for d in ("single", "dist"))
    train_one, train_two = live_one["train"]["accuracy"], live_two["train"]["accuracy"]
    assert train_one > 0.6 and abs(train_one - train_two) < 0.1, (train_one, train_two)
    assert live_one["val"]["accuracy"] > 0.25 and live_two["val"]["accuracy"] > 0.25, (live_one, live_two)
    assert live_two["step"] == 1  # two epochs logged once, by rank 0

    assert json.loads((runs / "dist" / "models" / "run.json").read_text()) == {"device": "cpu", "processes": 2}
    assert json.loads((runs / "single" / "models" / "run.json").read_text()) == {"device": "cpu", "processes": 1}
    log = (runs / "torchrun.log").read_text()
    assert log.count("epoch 2/2:") == 1, log  # rank 0 alone reports (and writes)
    assert "rank 0 of 2 (gloo)" in log


def test_sharded_attack_and_evaluation_equal_one_process(runs):
    for name in ("attack.json", "attack.csv", "attack.npz", "evaluate.json", "evaluate.csv", "rank.npz"):
        assert (runs / "dist" / name).read_bytes() == (runs / "single" / name).read_bytes(), name
    assert json.loads((runs / "dist" / "attack.json").read_text())["examples"] == 60
    assert json.loads((runs / "dist" / "evaluate.json").read_text())["device"] == "cpu"


def test_sharded_ranking_equals_one_process(runs):
    two = json.loads((runs / "dist" / "rank.json").read_text())
    one = json.loads((runs / "single" / "rank.json").read_text())
    # Counts are exact; Taylor scores and mean losses are float sums, added in another order.
    floats = {"score", "mean_score", "baseline_loss", "comparison"}
    assert {k: v for k, v in two.items() if k not in floats} == {k: v for k, v in one.items() if k not in floats}
    assert two["examples"] == 50 and two["accuracy"] is not None
    np.testing.assert_allclose(two["score"], one["score"], rtol=1e-9, atol=1e-12)
    assert two["baseline_loss"] == pytest.approx(one["baseline_loss"], rel=1e-12)
    assert two["comparison"]["set_agreement"] == one["comparison"]["set_agreement"]
    a, b = pd.read_csv(runs / "dist" / "rank.csv"), pd.read_csv(runs / "single" / "rank.csv")
    pd.testing.assert_frame_equal(a, b, rtol=1e-9)


# ---------------------------------------------------------------- launch and sharding rules


@pytest.mark.parametrize(("n", "batch"), [(100, 25), (60, 20), (7, 3), (2, 5)])
@pytest.mark.parametrize("world", [2, 3])
def test_shards_are_whole_batches_covering_the_split_once(n, batch, world):
    split = Split(np.zeros((n, 1, 2, 2), np.uint8), np.arange(n, dtype=np.int64))
    parts = [distributed.shard(split, batch, Context(rank=r, world_size=world)) for r in range(world)]
    assert np.concatenate([p.labels for p in parts]).tolist() == list(range(n))
    batches = [list(y.tolist()) for p in parts for _, y in p.batches(batch)]
    assert batches == [list(y.tolist()) for _, y in split.batches(batch)]
    sizes = [len(list(p.batches(batch))) for p in parts]
    assert max(sizes) - min(sizes) <= 1


def test_counts_sum_exactly_over_shards():
    a = SweepResult([0.0, 0.1], examples=3, clean_correct=3, correct=[3, 1], targeted=[0, 2])
    b = SweepResult([0.0, 0.1], examples=2, clean_correct=1, correct=[1, 0], targeted=[1, 1])
    total = a.merge(b)
    assert (total.examples, total.clean_correct, total.correct, total.targeted) == (5, 4, [4, 1], [1, 3])


def test_torchrun_command_is_standalone_unless_rendezvous_settings_are_given(monkeypatch):
    monkeypatch.delenv(distributed.TORCHRUN_ARGS_VAR, raising=False)
    command = distributed.torchrun_command(4, ["-m", "fragile.cli", "train"])
    assert command[:2] == [sys.executable, "-m"] and "--standalone" in command
    assert command[command.index("--nproc-per-node") + 1] == "4"
    monkeypatch.setenv(distributed.TORCHRUN_ARGS_VAR, "--nnodes 2 --node-rank 1 --rdzv-endpoint host0:29500")
    command = distributed.torchrun_command(4, ["-m", "fragile.cli", "train"])
    assert "--standalone" not in command

    assert command[command.index("--node-rank") + 1] == "1" and command[-3:] == ["-m", "fragile.cli", "train"]


def test_bad_process_settings_are_one_line_errors(monkeypatch):
    monkeypatch.setenv(distributed.NPROC_VAR, "two")
    with pytest.raises(FragileError, match="FRAGILE_NPROC='two' must be a whole number"):
        distributed.requested_processes()
    monkeypatch.setenv(distributed.NPROC_VAR, "2")
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    monkeypatch.setattr(sys, "argv", ["pytest"])
    with pytest.raises(FragileError, match="started as `fragile rank"):
        distributed.relaunch("rank")
    two = Context(rank=0, world_size=2)
    with pytest.raises(FragileError, match="train.batch_size 63 must be a multiple of the 2"):
        distributed.check_training(63, 640, False, torch.device("cpu"), two)
    with pytest.raises(FragileError, match="train.sync_bn needs CUDA"):
        distributed.check_training(64, 640, True, torch.device("cpu"), two)
    distributed.check_training(63, 10, True, torch.device("cpu"), Context())  # one process: nothing to check
