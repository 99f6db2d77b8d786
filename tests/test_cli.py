"""The `fragile` console script as a user runs it: bad input gives one line, exit 2."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(Path(sys.executable).parent / "fragile"), *args], cwd=cwd, capture_output=True, text=True, timeout=300
    )


def test_help_lists_every_stage(tmp_path):
    out = run("--help", cwd=tmp_path)
    assert out.returncode == 0
    for stage in ("prepare", "train", "rank", "attack_target", "harden", "evaluate", "summarize", "figures", "report"):
        assert stage in out.stdout


@pytest.mark.parametrize(
    ("stage", "unused"),
    [("harden", ("pandas", "torchvision", "matplotlib", "scipy")), ("report", ("torch", "torchvision"))],
)
def test_a_stage_imports_only_what_it_uses(stage, unused):
    # Every stage is its own process under DVC: an import it does not need is paid on every run.
    code = ("import sys; from fragile.cli import stage_command; stage_command(sys.argv[1]); "
            "print(' '.join(m for m in sys.argv[2:] if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code, stage, *unused], capture_output=True, text=True, timeout=120,
                         check=True)
    assert out.stdout.split() == []


def _params(tmp_path: Path, **section_changes) -> Path:
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    for key, value in section_changes.items():
        section, _, leaf = key.partition("__")
        if leaf:
            raw[section][leaf] = value
        else:
            raw[section] = value
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"epsilon": 1.5}, "epsilon must be in [0, 1]"),
        ({"data__dataset": "mnits"}, "did you mean 'mnist'"),
        ({"train__checkpoints": [1, 30]}, "outside 1..train.epochs"),
    ],
)
def test_bad_params_give_one_line_and_exit_2_without_writing(tmp_path, changes, message):
    params = _params(tmp_path, **changes)
    out = run("prepare", "--out", str(tmp_path / "prepared"), "--params", str(params), cwd=tmp_path)
    assert out.returncode == 2
    assert out.stderr.startswith("error: ") and message in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1
    assert "Traceback" not in out.stderr
    assert not (tmp_path / "prepared").exists()


def test_missing_dataset_offline_is_one_line(tmp_path):
    params = _params(tmp_path, data__dataset="cifar10", data__root=str(tmp_path / "none"), data__download=False)
    out = run("prepare", "--out", str(tmp_path / "prepared"), "--params", str(params), cwd=tmp_path)
    assert out.returncode == 2
    assert "dataset cifar10" in out.stderr and str(tmp_path / "none") in out.stderr
    assert "Traceback" not in out.stderr


def test_a_corrupt_checkpoint_is_one_line_naming_the_file(tmp_path):
    import numpy as np

    from fragile.data import Split, write_prepared

    split = Split(np.zeros((4, 1, 28, 28), np.uint8), np.arange(4))
    write_prepared(tmp_path / "prepared", {"train": split, "val": split, "test": split}, 10, "test")
    bad = tmp_path / "epoch_1.pt"
    bad.write_bytes(b"not a checkpoint")
    sets = tmp_path / "sets.json"
    out = run(
        "rank", "--model", str(bad), "--data", str(tmp_path / "prepared"), "--kernels", str(tmp_path / "k.csv"),
        "--outcomes", str(tmp_path / "k.npz"), "--sets", str(sets), "--params", str(ROOT / "params.yaml"), cwd=tmp_path,
    )
    assert out.returncode == 2
    assert f"checkpoint {bad} is truncated or corrupted" in out.stderr
    assert not sets.exists()


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda raw: raw.__setitem__("trian", raw.pop("train")), "unknown params key 'trian'; did you mean 'train'?"),
        (lambda raw: raw.__setitem__("epsilon", "0.1x"), "epsilon must be a number, got '0.1x'"),
        (lambda raw: raw["harden"].__setitem__("noise", 0), "harden.noise must be > 0, got 0.0"),
    ],
    ids=["typo", "wrong-type", "noise-zero"],
)
def test_a_params_file_with_a_typo_or_bad_value_stops_every_stage_in_one_line(tmp_path, edit, message):
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    edit(raw)
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump(raw))
    out = run("train", "--data", str(tmp_path / "none"), "--models", str(tmp_path / "m"), "--live", str(tmp_path / "l"),
              "--resume-dir", str(tmp_path / "r"), "--params", str(params), cwd=tmp_path)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    (line,) = out.stderr.strip().splitlines()
    assert line in (f"error: {params}: {message}", f"error: {message}")


def _prepared(folder: Path, channels: int, classes: int) -> Path:
    from fragile.data import Split, write_prepared

    rng = np.random.default_rng(0)
    split = Split(rng.integers(0, 256, (8, channels, 16, 16), dtype=np.uint8), np.arange(8) % classes)
    write_prepared(folder, {"train": split, "val": split, "test": split}, classes, "synthetic")
    return folder


def test_a_checkpoint_trained_on_other_data_is_refused_by_the_stage(tmp_path, tiny_model):
    """tiny_model takes 1 channel and 10 classes; these data have 3 channels and 4 classes."""
    from fragile import models

    ckpt = tmp_path / "epoch_1.pt"
    models.save(ckpt, tiny_model, {"arch": "resnet18", "stem": "imagenet", "num_classes": 10, "in_channels": 1,
                                   "mean": [0.5], "std": [0.25], "epoch": 1, "dataset": "mnist"})
    data = _prepared(tmp_path / "data", channels=3, classes=4)
    sets = tmp_path / "sets.json"
    out = run("rank", "--model", str(ckpt), "--data", str(data), "--kernels", str(tmp_path / "k.csv"),
              "--outcomes", str(tmp_path / "k.npz"), "--sets", str(sets), "--params", str(ROOT / "params.yaml"), cwd=tmp_path)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert f"checkpoint {ckpt} has num_classes=10 but 4 was expected" in out.stderr
    assert not sets.exists()


def test_a_tampered_data_file_stops_the_stage_naming_the_file(tmp_path, tiny_model):
    from fragile import models

    ckpt = tmp_path / "epoch_1.pt"
    models.save(ckpt, tiny_model, {"arch": "resnet18", "stem": "imagenet", "num_classes": 10, "in_channels": 1,
                                   "mean": [0.5], "std": [0.25], "epoch": 1, "dataset": "x"})
    data = _prepared(tmp_path / "data", channels=1, classes=10)
    images = np.load(data / "val_images.npy")
    images[0, 0, 0, 0] ^= 1  # one bit
    np.save(data / "val_images.npy", images)
    out = run("rank", "--model", str(ckpt), "--data", str(data), "--kernels", str(tmp_path / "k.csv"),
              "--outcomes", str(tmp_path / "k.npz"), "--sets", str(tmp_path / "s.json"), "--params", str(ROOT / "params.yaml"), cwd=tmp_path)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert f"{data / 'val_images.npy'} does not match the sha256 in {data / 'manifest.json'}" in out.stderr


def test_a_stage_without_a_path_option_names_it_and_writes_nothing(tmp_path):
    out = run("prepare", "--out", str(tmp_path / "prepared"), cwd=tmp_path)  # no --params: nothing is assumed
    assert out.returncode == 2 and "Missing option '--params'" in out.stderr
    assert not (tmp_path / "prepared").exists()
