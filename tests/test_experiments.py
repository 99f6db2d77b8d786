"""Experiments as users drive them: real `dvc` and `git` in temporary copies of a tiny project."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest
import torch

from conftest import copy_repo
from pipeline_repo import env, sh

PER_CHECKPOINT_UPSTREAM = {"prepare", "train", "rank@1", "attack_target@1"}


def ran_stages(output: str) -> set[str]:
    return {line.split("'")[1] for line in output.splitlines() if line.startswith("Running stage")}


def restored_stages(output: str) -> set[str]:
    return {line.split("'")[1] for line in output.splitlines() if "is cached - skipping run" in line}


@pytest.fixture
def repo(reproduced_repo, tmp_path) -> Path:
    return copy_repo(reproduced_repo, tmp_path / "repo")


def test_repro_with_nothing_changed_is_a_no_op(repo):
    assert ran_stages(sh("dvc", "repro", cwd=repo).stdout) == set()


def test_exp_run_epsilon_reruns_only_what_reads_it_and_diffs_by_name(repo):
    out = sh("dvc", "exp", "run", "-n", "eps02", "-S", "epsilon=0.2", cwd=repo).stdout
    # evaluate runs PGD (and AutoAttack) at the headline ε for the masking verdict
    assert ran_stages(out) == {"harden@1", "evaluate@1", "figures", "summarize", "report"}
    assert not ran_stages(out) & PER_CHECKPOINT_UPSTREAM

    diff = json.loads(sh("dvc", "metrics", "diff", "HEAD", "eps02", "--json", cwd=repo).stdout)
    changed = diff["metrics/headline.json"]
    assert changed["epsilon"] == {"old": 0.1, "new": 0.2, "diff": pytest.approx(0.1)}
    assert "epoch_1.original.fgsm_accuracy" in changed

    table = sh("dvc", "exp", "show", "--md", "--no-pager", cwd=repo).stdout
    for name in ("eps02", "epoch_1.original.clean_accuracy", "epoch_1.hardened.fgsm_accuracy_whitebox",
                 "epoch_1.hardened.fgsm_accuracy_transfer", "epoch_1.original.targeting_pct",
                 "epoch_1.kernels.fragile", "epoch_1.kernels.null", "epoch_1.harden.tau",
                 "epoch_1.harden.alpha", "epoch_1.harden.rank_kept"):
        assert name in table, name

    shown = json.loads(sh("dvc", "plots", "diff", "HEAD", "eps02", "--json", cwd=repo).stdout)
    assert not shown.get("errors")
    names = set(shown["data"])
    for plot in ("plots/accuracy_vs_epsilon.csv", "plots/targeting_vs_epsilon.csv", "plots/kernel_drop.csv",
                 "dvclive/train/plots/metrics/train/loss.tsv", "dvclive/train/plots/metrics/val/accuracy.tsv"):
        assert plot in names, plot
    values = shown["data"]["plots/accuracy_vs_epsilon.csv"][0]["content"]["data"]["values"]
    assert {row["rev"] for row in values} == {"HEAD", "eps02"}
    assert {row["series"] for row in values} == {"epoch 1 original", "epoch 1 hardened white-box",
                                                 "epoch 1 hardened transfer", "epoch 1 original PGD",
                                                 "epoch 1 hardened PGD"}


def test_a_mistyped_set_param_is_refused_and_nothing_is_lost(repo):
    before = (repo / "params.yaml").read_text()
    out = sh("dvc", "exp", "run", "-S", "trian.epochs=3", cwd=repo, check=False)
    assert out.returncode != 0
    assert "trian" in out.stderr and "Traceback" not in out.stderr
    assert (repo / "params.yaml").read_text() == before
    assert json.loads(sh("dvc", "status", "--json", cwd=repo).stdout) == {}


def test_queued_grid_runs_with_two_workers(repo):
    sh("dvc", "exp", "run", "--queue", "-S", "epsilon=0.05,0.2", cwd=repo)
    # Not through sh: the workers inherit the starter's pipes, and a worker that got no task can
    # stay alive idle, so reading them to the end could wait past the experiments' end.
    starter = subprocess.Popen(["dvc", "queue", "start", "-j", "2"], cwd=repo, env=env(),
                               stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            status = sh("dvc", "queue", "status", cwd=repo).stdout
            if "Queued" not in status and "Running" not in status:
                break
            time.sleep(3)
    finally:
        sh("dvc", "queue", "stop", cwd=repo)
        try:
            starter.wait(timeout=60)
        except subprocess.TimeoutExpired:
            starter.kill()
    assert status.count("Success") == 2, status
    shown = json.loads(sh("dvc", "exp", "show", "--json", cwd=repo).stdout)
    epsilons = set()
    for baseline in shown:
        for exp in baseline.get("experiments") or []:
            for rev in exp["revs"]:
                epsilons.add(rev["data"]["params"]["params.yaml"]["data"]["epsilon"])
    assert epsilons == {0.05, 0.2}


def test_remote_clone_pull_and_run_cache(repo, tmp_path):
    remote = tmp_path / "storage"
    sh("dvc", "remote", "add", "-d", "storage", str(remote), cwd=repo)
    sh("git", "commit", "-qam", "add a DVC remote", cwd=repo)
    # Someone computes another ε and shares it through the run-cache, without committing it.
    sh("dvc", "exp", "run", "-S", "epsilon=0.2", cwd=repo)
    # Back to the committed state (params, dvc.lock and the git-tracked metrics): the experiment
    # stays only in the run-cache, and push sends the committed outputs with it.
    sh("git", "checkout", "--", ".", cwd=repo)
    sh("dvc", "checkout", cwd=repo)
    sh("dvc", "push", "--run-cache", cwd=repo)

    clone = tmp_path / "clone"
    sh("git", "clone", "-q", str(repo), str(clone), cwd=tmp_path)
    sh("dvc", "pull", cwd=clone)
    assert json.loads(sh("dvc", "status", "--json", cwd=clone).stdout) == {}
    assert ran_stages(sh("dvc", "repro", cwd=clone).stdout) == set()
    original = torch.load(clone / "models/original/epoch_1.pt", weights_only=True)["state_dict"]
    mine = torch.load(repo / "models/original/epoch_1.pt", weights_only=True)["state_dict"]
    assert all(torch.equal(original[k], mine[k]) for k in mine)

    params = clone / "params.yaml"
    params.write_text(params.read_text().replace("epsilon: 0.1\n", "epsilon: 0.2\n", 1))
    out = sh("dvc", "repro", "--pull", cwd=clone).stdout
    # The hardened checkpoint comes out of the run-cache; evaluate (PGD at the new headline ε)
    # and the stages after it, whose outputs are git-tracked, may be rewritten.
    assert "harden@1" in restored_stages(out)
    assert ran_stages(out) <= {"evaluate@1", "figures", "summarize", "report"}
    assert json.loads((clone / "metrics/headline.json").read_text())["epsilon"] == 0.2


def test_an_unreachable_remote_is_a_clear_error_and_nothing_is_lost(repo, tmp_path):
    sh("dvc", "remote", "add", "-d", "broken", "ssh://fragile.invalid/storage", cwd=repo)
    before = (repo / "metrics/headline.json").read_bytes()
    out = sh("dvc", "push", cwd=repo, check=False)
    assert out.returncode != 0
    assert "ERROR" in out.stderr and "Traceback" not in out.stderr
    assert (repo / "metrics/headline.json").read_bytes() == before
    assert (repo / "models/original/epoch_1.pt").is_file()


def test_forced_repro_is_byte_identical(repo):
    tracked = ["metrics/headline.json", "plots/accuracy_vs_epsilon.csv", "plots/targeting_vs_epsilon.csv",
               "plots/kernel_drop.csv", "dvclive/train/metrics.json", "results/rank/epoch_1.json",
               "results/harden/epoch_1.json", "results/evaluate/epoch_1.json", "models/original/epoch_1.pt",
               "models/hardened/epoch_1.pt"]
    before = {p: (repo / p).read_bytes() for p in tracked}
    sh("dvc", "repro", "--force", cwd=repo)
    changed = [p for p in tracked if (repo / p).read_bytes() != before[p]]
    assert changed == []


def test_analysis_layer_invalidates_exactly_the_stages_that_read_it(repo):
    """`dvc status` (nothing runs): analysis.layer changes rank..summarize; another analysis key
    (a param no per-checkpoint stage reads) changes none of them."""
    import yaml

    original = yaml.safe_load((repo / "params.yaml").read_text())
    for extra, expected in (({"layer": "layer1.0.conv1"},
                             {"rank@1", "attack_target@1", "harden@1", "evaluate@1", "summarize"}),
                            ({"unread_key": 3}, set())):
        params = {**original, "analysis": {**original["analysis"], **extra}}
        (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
        status = json.loads(sh("dvc", "status", "--json", cwd=repo).stdout)
        changed = {name for name, changes in status.items()
                   if any("params.yaml" in (c.get("changed deps") or {}) for c in changes if isinstance(c, dict))}
        assert changed == expected
