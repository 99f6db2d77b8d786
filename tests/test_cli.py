"""The `fragile` console script as a user runs it: bad input gives one line, exit 2."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

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
    bad = tmp_path / "epoch_1.pt"
    bad.write_bytes(b"not a checkpoint")
    sets = tmp_path / "sets.json"
    out = run(
        "rank", "--model", str(bad), "--kernels", str(tmp_path / "k.csv"), "--sets", str(sets),
        "--params", str(ROOT / "params.yaml"), cwd=tmp_path,
    )
    assert out.returncode == 2
    assert f"checkpoint {bad} is truncated or corrupted" in out.stderr
    assert not sets.exists()
