"""`make gpu-check`: one line and exit 1 without CUDA; the same check, run on the CPU with a tiny
config, drives the real pipeline and finds every stage's recorded device."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from benchmarks.gpu_check import (
    CLASSES,
    SHAPE,
    no_cuda_message,
    on_device,
    recorded_devices,
    smoke_params,
    synthetic_imagefolder,
)
from fragile.data import load_raw
from fragile.errors import FragileError
from fragile.params import DataParams, params_from_dict
from pipeline_repo import env

ROOT = Path(__file__).resolve().parents[1]
TINY = ["model.arch=resnet18", "attack.autoattack=false", "attack.epsilons=[0,0.01]", "attack.pgd_epsilons=[]",
        "train.batch_size=16", "rank.max_examples=40", "attack.max_examples=20", "evaluate.max_examples=20",
        "harden.search_examples=20", "analysis.rank_bootstrap=0", "analysis.chance_subsets=0"]


def gpu_check(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "benchmarks.gpu_check", *args], cwd=ROOT, env=env(),
                          capture_output=True, text=True, timeout=600)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_without_cuda_it_is_one_line_and_exit_1():
    out = gpu_check()
    assert out.returncode == 1
    assert out.stderr.strip() == no_cuda_message() and "no CUDA device found" in out.stderr
    assert out.stdout == ""


def test_the_synthetic_folder_is_cifar_shaped_for_the_loader(tmp_path):
    synthetic_imagefolder(tmp_path, 40)
    raw = load_raw(DataParams(dataset="imagefolder", root=str(tmp_path)))
    assert raw.train_images.shape == (40, *SHAPE) and raw.num_classes == CLASSES
    assert np.bincount(raw.train_labels).tolist() == [4] * CLASSES
    means = [raw.train_images[raw.train_labels == c].mean() for c in range(CLASSES)]
    assert len({round(m) for m in means}) > 1  # classes differ: there is something to learn


def test_smoke_params_are_the_preset_on_the_synthetic_folder(tmp_path):
    params = params_from_dict(smoke_params(tmp_path, 2, ["attack.autoattack=false"]))
    assert (params.model.arch, params.epsilon, params.attack.pgd_epsilons) == ("resnet50", 0.01, (0.0024,))
    assert (params.data.dataset, params.data.root) == ("imagefolder", str(tmp_path))
    assert params.train.epochs == 2 and params.train.checkpoints == (2,) and params.train.lr == 0.005
    assert not params.attack.autoattack
    with pytest.raises(FragileError, match="not KEY=VALUE"):
        smoke_params(tmp_path, 2, ["epsilon"])
    with pytest.raises(FragileError, match="train.checkpoints"):
        smoke_params(tmp_path, 2, ["train.checkpoints=[3]"])


def test_recorded_devices_reads_each_stage_and_flags_missing_ones(tmp_path):
    (tmp_path / "models/original").mkdir(parents=True)
    (tmp_path / "models/original/run.json").write_text(json.dumps({"device": "cuda", "processes": 1}))
    (tmp_path / "results/rank").mkdir(parents=True)
    (tmp_path / "results/rank/epoch_4.json").write_text(json.dumps({"device": "cpu"}))
    found = recorded_devices(tmp_path, [4])
    assert found["models/original/run.json"] == "cuda" and found["results/rank/epoch_4.json"] == "cpu"
    assert found["results/evaluate/epoch_4.json"] == "missing"
    assert len(found) == 5


def test_a_recorded_device_is_matched_by_its_type():
    assert on_device("cuda", "cuda") and on_device("cuda:1", "cuda") and on_device("cuda:0, rank 0 of 2 (nccl)", "cuda")
    assert not on_device("cpu", "cuda") and not on_device("missing", "cuda")


def test_on_the_cpu_every_stage_records_its_device_and_rates_are_printed(tmp_path):
    out = gpu_check("--device", "cpu", "--images", "200", "--epochs", "4", "--bench-images", "32",
                    "--keep", str(tmp_path), *[arg for item in TINY for arg in ("--set", item)])
    assert out.returncode == 0, out.stdout + out.stderr
    assert "every stage ran on cpu" in out.stdout
    for stage in ("models/original/run.json", "results/rank/epoch_4.json", "results/attack/epoch_4.json",
                  "results/harden/epoch_4.json", "results/evaluate/epoch_4.json"):
        assert f"{stage}: cpu\n" in out.stdout
    rates = re.search(r"train: (\d+) images/s .*FGSM sweep: (\d+) images/s", out.stdout)
    assert rates and int(rates.group(1)) > 0 and int(rates.group(2)) > 0
    assert json.loads((tmp_path / "repo/models/original/run.json").read_text())["device"] == "cpu"
