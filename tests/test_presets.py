"""Presets: every shipped preset is valid params, bad ones are one line and run nothing, patterns
select grids, and a preset runs as a real DVC experiment."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from hydra.core.override_parser.overrides_parser import OverridesParser

from conftest import copy_repo
from fragile.data import load_raw
from fragile.errors import FragileError
from fragile.params import load_params
from fragile.presets import Preset, apply, available, check, hydra_value, load_preset, select
from fragile.units import normalised_to_pixels
from pipeline_repo import env, sh

ROOT = Path(__file__).resolve().parents[1]
PRESETS = ROOT / "presets"
FRAGILE = str(Path(sys.executable).parent / "fragile")
STD = {"mnist": [0.3081], "cifar10": [0.2470, 0.2435, 0.2616]}  # torchvision's usual per-channel stds
REPORT_TOLERANCE = 5e-4  # report_robustness finds a reading on attack.epsilons within this


def shipped() -> list[Preset]:
    return available(PRESETS)


def fragile(*args: str, cwd: Path, environ: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([FRAGILE, *args], cwd=cwd, capture_output=True, text=True, timeout=300,
                          env=environ or env())


@pytest.fixture
def workspace(tmp_path) -> Path:
    """params.yaml, a presets/ folder and a fake `dvc` first on PATH that logs its argv."""
    shutil.copy(ROOT / "params.yaml", tmp_path / "params.yaml")
    (tmp_path / "presets").mkdir()
    fake = tmp_path / "bin" / "dvc"
    fake.parent.mkdir()
    fake.write_text(f"#!{sys.executable}\nimport json, sys\n"
                    f"open({str(tmp_path / 'dvc-calls')!r}, 'a').write(json.dumps(sys.argv[1:]) + '\\n')\n")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    return tmp_path


def fake_env(workspace: Path) -> dict[str, str]:
    out = env()
    out["PATH"] = f"{workspace / 'bin'}{os.pathsep}{out['PATH']}"
    return out


def dvc_calls(workspace: Path) -> list[list[str]]:
    log = workspace / "dvc-calls"
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def write_preset(folder: Path, name: str, overrides: dict, description: str = "a test preset") -> Path:
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump({"description": description, "set": overrides}, sort_keys=False))
    return path


# ---------------------------------------------------------------- the shipped presets


@pytest.mark.parametrize("preset", shipped(), ids=lambda p: p.name)
def test_every_shipped_preset_resolves_to_valid_params_as_dvc_sets_them(preset):
    params = check(preset, ROOT / "params.yaml")
    assert preset.description and "\n" not in preset.description
    # What DVC writes is Hydra's parse of each -S value: it must be the value validated here.
    parser = OverridesParser.create()
    parsed = {o.key_or_group: o.value() for o in parser.parse_overrides(preset.set_params())}
    assert not any(o.is_sweep_override() for o in parser.parse_overrides(preset.set_params()))
    assert parsed == preset.overrides
    flat = params.as_dict()
    for key, value in preset.overrides.items():
        node = flat
        for part in key.split("."):
            node = node[part]
        assert node == value, key


def test_cpu_mnist5k_resnet50_is_exactly_the_running_experiment():
    preset = load_preset(PRESETS / "cpu-mnist5k-resnet50.yaml")
    assert preset.set_params() == [
        "model.arch=resnet50", "train.epochs=100", "train.checkpoints=[10,50,100]", "epsilon=0.34",
        "attack.epsilons=[0,0.01,0.02,0.05,0.1,0.105,0.2,0.34,0.5]", "attack.pgd_epsilons=[0.105]",
        "attack.autoattack=true",
    ]


def test_paper_presets_cover_the_grid_with_both_readings_of_epsilon():
    papers = select(["paper-*"], PRESETS)
    grid = {(p.overrides["data.dataset"], p.overrides["model.arch"]) for p in papers}
    assert grid == {(d, a) for d in ("mnist", "cifar10") for a in ("resnet18", "resnet50", "resnet101")}
    for preset in papers:
        params = check(preset, ROOT / "params.yaml")
        assert params.train.epochs == 100 and params.train.checkpoints == (10, 50, 100)
        assert params.attack.autoattack
        assert params.epsilon in params.attack.epsilons  # the paper's ε as pixels
        normalised = normalised_to_pixels(params.epsilon, STD[params.data.dataset])
        on_grid = [e for e in params.attack.epsilons if abs(e - normalised) < REPORT_TOLERANCE]
        assert on_grid, preset.name  # ... and as normalised units, where the report looks for it
        assert set(on_grid) <= set(params.attack.pgd_epsilons)


def test_cpu_fashion_preset_checkpoints_at_10_50_100_percent_of_its_epochs():
    params = check(load_preset(PRESETS / "cpu-fashion-resnet18.yaml"), ROOT / "params.yaml")
    epochs = params.train.epochs
    assert params.data.dataset == "fashion-mnist" and params.model.arch == "resnet18"
    assert params.train.checkpoints == (max(1, round(epochs / 10)), round(epochs / 2), epochs)
    assert params.epsilon in params.attack.epsilons


@pytest.mark.skipif(not Path("/usr/share/datasets/fashion-mnist").is_dir(),
                    reason="apt-get install dataset-fashion-mnist puts the files there")
def test_cpu_fashion_preset_reads_the_debian_package_files():
    params = check(load_preset(PRESETS / "cpu-fashion-resnet18.yaml"), ROOT / "params.yaml")
    raw = load_raw(params.data)  # gzipped idx files in a read-only folder
    assert raw.train_images.shape == (60000, 1, 28, 28) and raw.test_images.shape == (10000, 1, 28, 28)
    assert raw.num_classes == 10 and sorted(set(raw.train_labels.tolist())) == list(range(10))


# ---------------------------------------------------------------- bad presets: one line, nothing run


@pytest.mark.parametrize(("overrides", "message"), [
    ({"trian.epochs": 3}, "unknown params key 'trian.epochs'; did you mean 'train.epochs'?"),
    ({"train": 3}, "'train' is a section"),
    ({"epsilon.value": 3}, "unknown params key 'epsilon.value'"),
    ({"train.checkpoints": [10, 200]}, "train.checkpoints has epoch 200"),
    ({"attack.autoattack": "yes"}, "attack.autoattack must be true or false"),
    ({"epsilon": 1.5}, "epsilon must be in [0, 1]"),
    ({"attack.epsilons": {"a": 1}}, "attack.epsilons must be a value or a list of values"),
])
def test_a_bad_preset_is_one_line_naming_file_and_key_and_runs_nothing(workspace, overrides, message):
    path = write_preset(workspace / "presets", "bad", overrides)
    out = fragile("preset", "bad", cwd=workspace, environ=fake_env(workspace))
    assert out.returncode != 0
    assert out.stderr.startswith(f"error: {Path('presets') / path.name}: ") and message in out.stderr, out.stderr
    assert len(out.stderr.strip().splitlines()) == 1 and "Traceback" not in out.stderr
    assert dvc_calls(workspace) == []


def test_one_bad_preset_in_a_grid_stops_the_whole_grid(workspace):
    write_preset(workspace / "presets", "grid-a", {"epsilon": 0.2})
    write_preset(workspace / "presets", "grid-b", {"epsilon": 2.0})
    out = fragile("preset", "--queue", "grid-*", cwd=workspace, environ=fake_env(workspace))
    assert out.returncode != 0 and "grid-b.yaml" in out.stderr
    assert dvc_calls(workspace) == []


def test_a_preset_file_of_another_shape_is_refused(tmp_path):
    path = tmp_path / "odd.yaml"
    path.write_text("model.arch: resnet50\n")  # overrides not under set:
    with pytest.raises(FragileError, match="odd.yaml: a preset is"):
        load_preset(path)


# ---------------------------------------------------------------- selection and the commands run


def test_patterns_select_each_preset_once_in_name_order(workspace):
    for name in ("paper-b", "paper-a", "other"):
        write_preset(workspace / "presets", name, {"epsilon": 0.2})
    folder = workspace / "presets"
    assert [p.name for p in select(["paper-*"], folder)] == ["paper-a", "paper-b"]
    assert [p.name for p in select(["paper-b", "*"], folder)] == ["other", "paper-a", "paper-b"]
    with pytest.raises(FragileError, match="no preset matches 'papr-a'.*did you mean 'paper-a'"):
        select(["papr-a"], folder)


def test_several_presets_need_queue(workspace):
    for name in ("grid-a", "grid-b"):
        write_preset(workspace / "presets", name, {"epsilon": 0.2})
    out = fragile("preset", "grid-*", cwd=workspace, environ=fake_env(workspace))
    assert out.returncode != 0 and "add --queue" in out.stderr
    assert dvc_calls(workspace) == []


def test_queue_runs_one_dvc_exp_run_queue_per_preset(workspace):
    write_preset(workspace / "presets", "grid-a", {"epsilon": 0.2, "model.arch": "resnet50"})
    write_preset(workspace / "presets", "grid-b", {"train.checkpoints": [5, 10], "data.root": "/data/a,b"})
    out = fragile("preset", "--queue", "grid-*", cwd=workspace, environ=fake_env(workspace))
    assert out.returncode == 0, out.stderr
    assert dvc_calls(workspace) == [
        ["exp", "run", "--queue", "-n", "grid-a", "-S", "epsilon=0.2", "-S", "model.arch=resnet50"],
        # a comma would make DVC sweep the value: quoted, it stays one string
        ["exp", "run", "--queue", "-n", "grid-b", "-S", "train.checkpoints=[5,10]", "-S", "data.root='/data/a,b'"],
    ]


def test_dry_run_prints_the_exact_commands_and_runs_nothing(workspace):
    out = fragile("preset", "--dry-run", "--queue", "paper-*", "--dir", str(PRESETS), cwd=workspace,
                  environ=fake_env(workspace))
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert len(lines) == 6 and all(line.startswith("dvc exp run --queue -n paper-") for line in lines)
    assert "-S 'train.checkpoints=[10,50,100]'" in lines[0]
    assert dvc_calls(workspace) == []


def test_list_names_and_describes_every_preset():
    out = fragile("preset", "--list", cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert [line.split()[0] for line in out.stdout.splitlines()] == [p.name for p in shipped()]


def test_hydra_values_parse_back_to_themselves():
    parser = OverridesParser.create()
    for value in (0, 0.105, 1e-05, True, False, "resnet50", "/usr/share/datasets/fashion-mnist", "a,b", "true",
                  "0.5", "it's", [], [0, 0.5], ["x", "y z"]):
        assert parser.parse_overrides([f"k={hydra_value(value)}"])[0].value() == value, value


def test_apply_sets_dotted_keys_on_a_copy():
    raw = {"epsilon": 0.1, "train": {"epochs": 10, "lr": 0.02}}
    assert apply(raw, {"train.epochs": 3, "epsilon": 0.2}) == {"epsilon": 0.2, "train": {"epochs": 3, "lr": 0.02}}
    assert raw["train"]["epochs"] == 10


# ---------------------------------------------------------------- a preset as a real DVC experiment


def test_a_preset_runs_as_a_named_dvc_experiment(reproduced_repo, tmp_path):
    repo = copy_repo(reproduced_repo, tmp_path / "repo")
    (repo / "presets").mkdir()
    # Keys only summarize reads: the experiment reruns summarize and report, nothing upstream.
    write_preset(repo / "presets", "tiny-claims", {"analysis.significance": 0.1, "analysis.claim_tolerance": 0.2})
    sh("git", "add", "presets", cwd=repo)
    sh("git", "commit", "-qm", "a preset", cwd=repo)
    out = fragile("preset", "tiny-claims", cwd=repo)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("dvc exp run -n tiny-claims -S analysis.significance=0.1 -S analysis.claim_tolerance=0.2")
    assert "Ran experiment(s): tiny-claims" in out.stdout
    assert {line.split("'")[1] for line in out.stdout.splitlines() if line.startswith("Running stage")} == {
        "summarize", "report"}
    applied = load_params(repo / "params.yaml").analysis  # the experiment is applied to the workspace
    assert (applied.significance, applied.claim_tolerance) == (0.1, 0.2)
    shown = json.loads(sh("dvc", "exp", "show", "--json", cwd=repo).stdout)
    runs = {exp["name"]: exp["revs"][0]["data"] for base in shown for exp in base.get("experiments") or []}
    params = runs["tiny-claims"]["params"]["params.yaml"]["data"]["analysis"]
    assert (params["significance"], params["claim_tolerance"]) == (0.1, 0.2)
    assert "epoch_1" in runs["tiny-claims"]["metrics"]["metrics/headline.json"]["data"]
