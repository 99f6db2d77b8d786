"""dvc.yaml and the library name the same files: every path is given on a stage's command line,
and the file names the library builds in shared folders are the names DVC tracks."""

from __future__ import annotations

import importlib
import inspect
import shlex
from pathlib import Path, PurePosixPath

import pytest
import yaml

from fragile import layout
from fragile.cli import STAGES

ROOT = Path(__file__).resolve().parents[1]
ITEM = "${item}"


def _stages() -> dict:
    return yaml.safe_load((ROOT / "dvc.yaml").read_text(encoding="utf-8"))["stages"]


def _body(name: str) -> dict:
    stage = _stages()[name]
    return stage.get("do", stage)


def _options(name: str) -> dict[str, str]:
    """The stage's command line as {--option: value}."""
    argv = shlex.split(_body(name)["cmd"])
    assert argv[:2] == ["fragile", name], argv
    return dict(zip(argv[2::2], argv[3::2]))


def _paths(entries: list) -> list[str]:
    return [next(iter(e)) if isinstance(e, dict) else e for e in entries]


def _per_checkpoint(pattern: str) -> str:
    return pattern.format(epoch=ITEM)


def test_per_checkpoint_files_carry_the_librarys_names():
    checkpoint, result = _per_checkpoint(layout.CHECKPOINT), _per_checkpoint(layout.RESULT)
    seen = 0
    for name, stage in _stages().items():
        if "foreach" not in stage:
            continue
        for path in _paths(stage["do"].get("deps", [])) + _paths(stage["do"].get("outs", [])):
            file = PurePosixPath(path).name
            if file.endswith(".pt"):
                assert file == checkpoint, (name, path)
                seen += 1
            elif file.endswith(".json"):
                assert file == result, (name, path)
                seen += 1
    assert seen >= 8


def test_folder_options_point_where_the_per_checkpoint_stages_write():
    def folder(stage: str, suffix: str) -> str:
        (path,) = [p for p in _paths(_body(stage)["outs"]) if p.endswith(suffix)]
        return str(PurePosixPath(path).parent)

    results = {"--rank-dir": folder("rank", ".json"), "--attack-dir": folder("attack_target", ".json"),
               "--harden-dir": folder("harden", ".json"), "--evaluate-dir": folder("evaluate", ".json")}
    for stage in ("summarize", "figures", "report"):
        for option, value in _options(stage).items():
            if option in results:
                assert value == results[option], (stage, option)
    summarize = _options("summarize")
    (trained,) = _paths(_body("train")["outs"])
    assert summarize["--original-models"] == trained == _options("train")["--models"]
    assert summarize["--hardened-models"] == folder("harden", ".pt")
    assert PurePosixPath(_options("rank")["--model"]) == PurePosixPath(trained) / _per_checkpoint(layout.CHECKPOINT)


def test_summarize_writes_the_plots_dvc_tracks():
    plots = _options("summarize")["--plots"]
    summarize = _body("summarize")
    declared = _paths(summarize.get("outs", [])) + _paths(summarize["plots"])
    assert sorted(declared) == sorted(f"{plots}/{name}" for name in layout.PLOTS)
    # the two with interval bands are drawn by dvc.yaml's top-level plots, from summarize's outs
    top_level = yaml.safe_load((ROOT / "dvc.yaml").read_text(encoding="utf-8"))["plots"]
    banded = {path: spec for entry in top_level for path, spec in entry.items()}
    assert sorted(banded) == sorted(_paths(summarize["outs"])) == [f"{plots}/{layout.ACCURACY_PLOT}",
                                                                   f"{plots}/{layout.TARGETING_PLOT}"]
    assert {spec["template"] for spec in banded.values()} == {"series_band"}


def test_the_resume_folder_is_outside_what_git_and_dvc_track():
    resume = PurePosixPath(_options("train")["--resume-dir"])
    top = f"{resume.parts[0]}/"
    assert top in (ROOT / ".dvcignore").read_text().splitlines()
    assert f"/{top}" in (ROOT / ".gitignore").read_text().splitlines()
    tracked = [p for body in map(_body, _stages()) for p in _paths(body.get("outs", []))]
    assert not [p for p in tracked if PurePosixPath(p).is_relative_to(resume)]


@pytest.mark.parametrize("stage", [s for s in STAGES if s in _stages()])
def test_every_path_option_of_a_stage_is_required_and_given_in_dvc_yaml(stage):
    """No stage repeats a path of dvc.yaml as its own default: DVC's command line gives them all."""
    main = importlib.import_module(f"stages.{stage}").main
    given = _options(stage)
    for name, parameter in inspect.signature(main).parameters.items():
        if parameter.annotation not in ("Path", Path):
            continue
        option = parameter.default
        assert option.default is ..., f"{stage} --{name} has a default ({option.default})"
        flags = option.param_decls or (f"--{name.replace('_', '-')}",)
        assert any(flag in given for flag in flags), f"dvc.yaml's {stage} cmd lacks {flags}"
