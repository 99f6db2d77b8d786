"""Interrupted training resumes: a real `dvc repro train` is killed (SIGINT, SIGKILL) after
epoch 1 and rerun; the final weights and DVCLive files equal an uninterrupted run's."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from fragile import models, resume
from fragile.data import Split, write_prepared
from pipeline_repo import env, make_repo, sh

STATE = Path(".fragile/resume/train/state.pt")
# Ten epochs on 96 images (batches of 32) and 80 validation images: a few seconds per epoch, and
# enough epochs after the first that the signal lands mid-run even when the resume state of
# epoch 1 reaches the disk late (a busy machine; with six, a run once finished first).
EPOCHS = 10
QUICK = {
    "data": {"val_fraction": 0.02},
    "train": {"epochs": EPOCHS, "checkpoints": [1, EPOCHS], "batch_size": 32, "max_examples": 96},
}


@pytest.fixture(scope="module")
def prepared(tmp_path_factory) -> Path:
    repo = make_repo(tmp_path_factory.mktemp("resume") / "prepared", QUICK)
    sh("dvc", "repro", "prepare", cwd=repo)
    return repo


def _copy(repo: Path, name: str) -> Path:
    dest = repo.parent / name
    shutil.copytree(repo, dest, symlinks=True, ignore=shutil.ignore_patterns("tmp"))
    return dest


@pytest.fixture(scope="module")
def uninterrupted(prepared) -> Path:
    repo = _copy(prepared, "uninterrupted")
    sh("dvc", "repro", "train", cwd=repo)
    return repo


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, map_location="cpu", weights_only=True)["state_dict"]


def _max_abs_difference(a: Path, b: Path) -> float:
    wa, wb = _weights(a), _weights(b)
    assert wa.keys() == wb.keys()
    return max(float((wa[k].double() - wb[k].double()).abs().max()) for k in wa)


def _interrupt(repo: Path, sig: signal.Signals) -> subprocess.CompletedProcess:
    """Start `dvc repro train` in its own process group, and once the resume state of epoch 1
    exists, send `sig` to the whole group (as a terminal's Ctrl-C does, or as the OOM killer
    or a power cut ends everything)."""
    proc = subprocess.Popen(
        ["dvc", "repro", "train"], cwd=repo, env=env(), start_new_session=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        # A test worker may run with SIGINT ignored, and an ignored signal stays ignored in every
        # process it starts: the run gets SIGINT's default, as under a terminal.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.monotonic() + 300
    while not (repo / STATE).exists():
        assert proc.poll() is None, f"train ended before epoch 1 was saved:\n{proc.communicate()}"
        assert time.monotonic() < deadline, "no resume state after 300 s"
        time.sleep(0.02)
    os.killpg(proc.pid, sig)
    out, err = proc.communicate(timeout=120)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL], ids=["SIGINT", "SIGKILL"])
def test_a_killed_train_stage_resumes_and_ends_with_the_uninterrupted_weights(prepared, uninterrupted, sig):
    repo = _copy(prepared, f"killed-{sig.name}")
    killed = _interrupt(repo, sig)
    assert killed.returncode != 0, "the run finished before the signal: the test proved nothing"
    assert not (repo / f"models/original/epoch_{EPOCHS}.pt").exists()
    if sig == signal.SIGINT:
        assert "interrupted" in killed.stderr and "Traceback" not in killed.stderr

    again = sh("dvc", "repro", "train", cwd=repo)
    assert "resuming from epoch " in again.stdout, again.stdout
    resumed_at = int(again.stdout.split("resuming from epoch ")[1].split()[0])
    assert 1 <= resumed_at < EPOCHS
    assert f"epoch 1/{EPOCHS}:" not in again.stdout  # epoch 1 was not trained again

    # CPU training here is bitwise deterministic: the difference is exactly 0, and the
    # checkpoint files (byte-stable by construction) are identical.
    for epoch in (1, EPOCHS):
        ours, theirs = repo / f"models/original/epoch_{epoch}.pt", uninterrupted / f"models/original/epoch_{epoch}.pt"
        assert _max_abs_difference(ours, theirs) == 0.0
        assert ours.read_bytes() == theirs.read_bytes()
    # DVCLive's history continues at the resumed step: every file equals the uninterrupted run's.
    live = sorted(p.relative_to(uninterrupted) for p in (uninterrupted / "dvclive/train").rglob("*") if p.is_file())
    assert live and all((repo / p).read_text() == (uninterrupted / p).read_text() for p in live)
    assert f'"step": {EPOCHS - 1}' in (repo / "dvclive/train/metrics.json").read_text()
    # Normal completion removes the state; DVC sees the stage as up to date.
    assert not (repo / ".fragile/resume/train").exists()
    assert sh("dvc", "status", "--json", "train", cwd=repo).stdout.strip() == "{}"


# ---------------------------------------------------------------- the stage, in process


def _tiny_prepared(path: Path) -> Path:
    rng = np.random.default_rng(0)

    def split(n: int) -> Split:
        return Split(rng.integers(0, 256, (n, 1, 16, 16), dtype=np.uint8), (np.arange(n) % 4).astype(np.int64))

    write_prepared(path, {"train": split(16), "val": split(8), "test": split(8)}, 4, "synthetic")
    return path


def _params(path: Path, lr: float = 0.05) -> Path:
    path.write_text(f"train: {{epochs: 2, checkpoints: [1, 2], batch_size: 8, lr: {lr}}}\n")
    return path


def _train(tmp_path: Path, params: Path, capsys) -> str:
    from stages.train import main

    main(data=tmp_path / "data", models_dir=tmp_path / "models", live=tmp_path / "live", params=params,
         resume_dir=tmp_path / "state")
    return capsys.readouterr().out


def test_a_state_from_other_params_is_ignored_and_the_message_says_why(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # DVCLive looks for a DVC repo from the working directory
    _tiny_prepared(tmp_path / "data")
    # Keep the state of a finished run, as if the process died right before removing it.
    monkeypatch.setattr(resume.ResumeFolder, "clear", lambda self: None)
    _train(tmp_path, _params(tmp_path / "a.yaml"), capsys)
    assert (tmp_path / "state" / resume.STATE_FILE).is_file()

    out = _train(tmp_path, _params(tmp_path / "b.yaml", lr=0.1), capsys)
    line = next(s for s in out.splitlines() if s.startswith("ignoring"))
    assert "saved for other params or data (train.lr 0.05 -> 0.1); training from epoch 1" in line
    assert "epoch 1/2:" in out

    shutil.rmtree(tmp_path / "models")
    # The last epoch writes no state (it would be removed at once): the kept one is epoch 1's.
    out = _train(tmp_path, _params(tmp_path / "b.yaml", lr=0.1), capsys)
    assert "resuming from epoch 1" in out and "epoch_1.pt restored" in out
    assert "epoch 1/2:" not in out and "epoch 2/2:" in out
    assert (tmp_path / "models/epoch_1.pt").is_file() and (tmp_path / "models/epoch_2.pt").is_file()


def test_a_changed_dataset_invalidates_the_state(tmp_path):
    data = _tiny_prepared(tmp_path / "data")
    code = [Path(resume.__file__)]
    before = resume.make_fingerprint({"seed": 0}, data / "manifest.json", code)
    labels = np.load(data / "train_labels.npy")
    write_prepared(data, {"train": Split(np.load(data / "train_images.npy"), labels[::-1].copy()),
                          "val": Split(np.load(data / "val_images.npy"), np.load(data / "val_labels.npy")),
                          "test": Split(np.load(data / "test_images.npy"), np.load(data / "test_labels.npy"))},
                   4, "synthetic")
    after = resume.make_fingerprint({"seed": 0}, data / "manifest.json", code)
    assert before.digest != after.digest
    assert after.differences(before.as_dict()) == ["the prepared data changed"]


class _Payload:
    def __reduce__(self):
        return (exec, ("import pathlib; pathlib.Path('PWNED').write_text('ran')",))


@pytest.mark.parametrize("damage", ["truncated", "garbage", "pickled code"])
def test_a_damaged_or_untrusted_state_is_ignored_with_a_reason(tmp_path, monkeypatch, damage):
    monkeypatch.chdir(tmp_path)
    folder = resume.ResumeFolder(tmp_path / "state")
    fingerprint = resume.Fingerprint({"seed": 0}, "d", "c")
    model = torch.nn.Linear(3, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=3)
    folder.write(folder.snapshot(fingerprint, 1, model, optimizer, scheduler, []))
    assert folder.load(fingerprint)[0] is not None
    if damage == "truncated":
        folder.state_file.write_bytes(folder.state_file.read_bytes()[:300])
    elif damage == "garbage":
        folder.state_file.write_bytes(b"\x00" * 100)
    else:
        torch.save({"format": resume.STATE_FORMAT, "fingerprint": fingerprint.digest, "x": _Payload()},
                   folder.state_file)
    state, why = folder.load(fingerprint)
    assert state is None and why.startswith(f"ignoring {folder.state_file}: ")
    assert ("refused" in why) == (damage == "pickled code")
    assert not (tmp_path / "PWNED").exists()


def _small_training_state():
    model = torch.nn.Linear(3, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    model(torch.ones(1, 3)).sum().backward()
    optimizer.step()  # a momentum buffer to save
    return model, optimizer, torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=3)


def test_a_snapshot_written_later_is_the_state_at_its_time(tmp_path):
    """The train stage writes the snapshot in the background while the next epoch trains."""
    folder = resume.ResumeFolder(tmp_path / "state")
    fingerprint = resume.Fingerprint({"seed": 0}, "d", "c")
    model, optimizer, scheduler = _small_training_state()
    weight = model.weight.detach().clone()
    momentum = optimizer.state[model.weight]["momentum_buffer"].clone()
    rng = torch.get_rng_state()
    history = [{"epoch": 1}]
    snapshot = folder.snapshot(fingerprint, 1, model, optimizer, scheduler, history)
    # Training goes on, changing the tensors in place, drawing random numbers, adding history.
    with torch.no_grad():
        model.weight.add_(1.0)
        optimizer.state[model.weight]["momentum_buffer"].mul_(0)
    torch.rand(10)
    history.append({"epoch": 2})
    folder.write(snapshot)
    state, why = folder.load(fingerprint)
    assert why is None and state.epoch == 1 and state.history == [{"epoch": 1}]
    assert torch.equal(state.model["weight"], weight)
    assert torch.equal(state.optimizer["state"][0]["momentum_buffer"], momentum)
    assert torch.equal(state.rng["torch"], rng)


def test_a_kept_checkpoint_survives_the_original_being_deleted(tmp_path):
    checkpoint = tmp_path / "models" / "epoch_1.pt"
    checkpoint.parent.mkdir()
    checkpoint.write_bytes(b"weights")
    folder = resume.ResumeFolder(tmp_path / "state")
    folder.keep_checkpoint(checkpoint)
    checkpoint.unlink()  # DVC removes a stage's outputs before it reruns it
    assert folder.restore_checkpoints(["epoch_1.pt"], checkpoint.parent) == [checkpoint]
    assert checkpoint.read_bytes() == b"weights"


def test_a_state_at_a_checkpoint_epoch_takes_its_weights_from_the_kept_checkpoint(tmp_path, tiny_model):
    folder = resume.ResumeFolder(tmp_path / "state")
    fingerprint = resume.Fingerprint({"seed": 0}, "d", "c")
    optimizer = torch.optim.SGD(tiny_model.parameters(), lr=0.1, momentum=0.9)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=3)
    checkpoint = tmp_path / "models" / "epoch_1.pt"
    models.save(checkpoint, tiny_model, {"arch": "resnet18", "num_classes": 10, "in_channels": 1, "mean": [0.5],
                                         "std": [0.25], "stem": "imagenet", "epoch": 1})
    folder.keep_checkpoint(checkpoint)
    folder.write(folder.snapshot(fingerprint, 1, tiny_model, optimizer, scheduler, [], weights_in="epoch_1.pt"))
    stored = torch.load(folder.state_file, weights_only=True)
    assert "model" not in stored and stored["model_checkpoint"] == "epoch_1.pt"  # not stored twice
    state, why = folder.load(fingerprint)
    assert why is None
    expected = tiny_model.state_dict()
    assert state.model.keys() == expected.keys() and all(torch.equal(state.model[k], expected[k]) for k in expected)

    folder.checkpoint("epoch_1.pt").unlink()
    state, why = folder.load(fingerprint)
    assert state is None and "the checkpoint holding its weights" in why and "epoch_1.pt" in why


def test_rng_states_round_trip():
    import random

    state = resume.capture_rng()
    first = (torch.rand(3), np.random.rand(3), [random.random() for _ in range(3)])
    torch.rand(5), np.random.rand(5), random.random()
    resume.restore_rng(state)
    second = (torch.rand(3), np.random.rand(3), [random.random() for _ in range(3)])
    assert torch.equal(first[0], second[0])
    assert np.array_equal(first[1], second[1])
    assert first[2] == second[2]
