from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from fragile.data import Split
from fragile.models import FragileNet, build

# Fixtures that build a whole project once (minutes of `dvc repro`): every test that uses one
# runs on the same xdist worker (`make test` runs `pytest -n 2 --dist loadgroup`), so each
# project is built once per run, not once per worker.
SHARED_BUILDS = {"reproduced_repo": "reproduced_repo", "uninterrupted": "resume", "prepared": "resume",
                 "runs": "distributed", "imported": "imported"}


if os.environ.get("PYTEST_XDIST_WORKER"):
    torch.set_num_threads(1)  # two workers on two cores: one thread each, not four threads fighting


def pytest_itemcollected(item: pytest.Item) -> None:
    """Marked as each test is collected: xdist turns the marks into groups in its own
    pytest_collection_modifyitems, which runs before a conftest's."""
    for fixture in getattr(item, "fixturenames", ()):
        if fixture in SHARED_BUILDS:
            item.add_marker(pytest.mark.xdist_group(SHARED_BUILDS[fixture]))
            break


@pytest.fixture
def one_thread():
    """torch on one thread: attacks of many tiny passes only contend for a shared machine's cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def tiny_model() -> FragileNet:
    """A real torchvision resnet18 (1 input channel, 10 classes), seeded, in eval mode,
    with non-trivial BatchNorm statistics so that dropping kernels matters."""
    torch.manual_seed(0)
    model = build("resnet18", num_classes=10, in_channels=1, mean=[0.5], std=[0.25])
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.1, 0.1)
                module.running_var.uniform_(0.5, 1.5)
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.2, 0.2)
    return model.eval()


@pytest.fixture
def tiny_split() -> Split:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(48, 1, 16, 16), dtype=np.uint8)
    labels = rng.integers(0, 10, size=48).astype(np.int64)
    return Split(images, labels)


@pytest.fixture(scope="session")
def reproduced_repo(tmp_path_factory) -> Path:
    """A tiny project repo after one real `dvc repro`, built once per test session.

    Tests that change it must work on a copy (`repo_copy`). Its stage processes ran under the
    open-audit hook: `pipeline_repo.audit_log(path)` holds the files each one read
    (tests/test_dvc_deps.py)."""
    from pipeline_repo import audit_log, audited_env, make_repo, sh

    path = make_repo(tmp_path_factory.mktemp("reproduced") / "repo")
    audit_log(path).mkdir()
    sh("dvc", "repro", cwd=path, environ=audited_env(path, audit_log(path)))
    sh("git", "add", "-A", cwd=path)
    sh("git", "commit", "-qm", "reproduce the tiny pipeline", cwd=path)
    return path


def copy_repo(source: Path, dest: Path) -> Path:
    shutil.copytree(source, dest, symlinks=True)
    return dest
