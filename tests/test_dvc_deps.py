"""Stage deps that cannot drift: every dvc.yaml stage declares the project modules it imports
and the project files it opens, so `dvc repro` reruns a stage whenever what it runs or reads
changes. Everything is computed from dvc.yaml and the code as they are (tests/stage_deps.py)."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import yaml

from conftest import copy_repo
from pipeline_repo import audit_log, audited_env, sh
from stage_deps import (
    ROOT,
    covered,
    declared_paths,
    entry_point,
    missing_module_deps,
    module_closure,
    read_logs,
    reads_by_stage,
    resolve_stages,
    stage_closures,
    stage_definitions,
    unaudited_in,
    undeclared_reads,
)


def _dvc_yaml(root: Path = ROOT) -> dict:
    return yaml.safe_load((root / "dvc.yaml").read_text(encoding="utf-8"))


def _base(name: str) -> str:
    return name.split("@")[0]  # a foreach item (rank@1) runs its stage's command


# ---------------------------------------------------------------- static: imports


def test_the_closure_follows_every_import_form(tmp_path):
    files = {
        "stages/__init__.py": '"""entry points"""\n',
        "stages/s.py": "import yaml\nfrom pkg import a\n",
        "src/pkg/__init__.py": "",
        "src/pkg/a.py": "import os\nfrom pkg.b import thing\n",  # from pkg.x import y
        "src/pkg/b.py": "thing = 1\n\ndef later():\n    import pkg.c\n",  # lazy, import pkg.x
        "src/pkg/c.py": "from . import d\nfrom .sub import value\n",  # relative forms
        "src/pkg/d.py": "",
        "src/pkg/sub/__init__.py": "value = 2\n",  # `value` is a name, not a module
        "src/pkg/unused.py": "",
    }
    for path, text in files.items():
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text(text)
    assert entry_point("fragile s --x 1", tmp_path) == "stages/s.py"
    assert entry_point("python -c pass", tmp_path) is None
    with pytest.raises(ValueError, match="runs no stage module"):
        entry_point("fragile nope", tmp_path)
    assert module_closure("stages/s.py", tmp_path) == {
        "stages/__init__.py", "stages/s.py", "src/pkg/__init__.py", "src/pkg/a.py", "src/pkg/b.py", "src/pkg/c.py",
        "src/pkg/d.py", "src/pkg/sub/__init__.py"}


def test_every_fragile_stage_has_an_entry_module_and_a_closure_beyond_it():
    closures = stage_closures(_dvc_yaml())
    commands = {name for name, d in stage_definitions(_dvc_yaml()).items() if d["cmd"].startswith("fragile ")}
    assert commands and set(closures) == commands
    for name, modules in closures.items():
        assert len(modules) > 3, (name, modules)  # its module, the packages and what it imports


def test_every_stage_declares_the_modules_it_imports():
    assert missing_module_deps(_dvc_yaml()) == {}


def test_a_deleted_module_dep_is_reported_exactly():
    dvc_yaml = _dvc_yaml()
    checked = 0
    for name, modules in stage_closures(dvc_yaml).items():
        for module in sorted(modules):
            mutated = copy.deepcopy(dvc_yaml)
            deps = stage_definitions(mutated)[name]["deps"]
            deps.remove(module)
            assert missing_module_deps(mutated) == {name: [module]}
            checked += 1
    assert checked > 0


def test_a_dep_folder_covers_the_modules_under_it():
    dvc_yaml = _dvc_yaml()
    definition = stage_definitions(dvc_yaml)["prepare"]
    definition["deps"] = [d for d in definition["deps"] if not d.startswith(("src/", "stages/"))]
    assert set(missing_module_deps(dvc_yaml)) == {"prepare"}
    definition["deps"] += ["src/fragile", "stages/"]
    assert missing_module_deps(dvc_yaml) == {}


# ---------------------------------------------------------------- dynamic: files opened


@pytest.fixture(scope="module")
def audited(reproduced_repo):
    """(resolved stages, reads per stage) of the tiny project's audited `dvc repro`."""
    stages = resolve_stages(_dvc_yaml(reproduced_repo), reproduced_repo)
    return stages, reads_by_stage(read_logs(audit_log(reproduced_repo)), stages)


def test_every_stage_process_was_audited(audited, reproduced_repo):
    stages, reads = audited
    assert set(reads) == {name for name, d in stages.items() if d["cmd"].startswith("fragile ")}
    for name, paths in reads.items():
        assert entry_point(stages[name]["cmd"], reproduced_repo) in paths, name  # its code, read from the repo
        assert "params.yaml" in paths, name


def test_no_stage_reads_an_undeclared_project_file(audited, reproduced_repo):
    stages, reads = audited
    assert undeclared_reads(stages, reads, unaudited_in(reproduced_repo)) == {}


def test_a_deleted_dep_is_reported_as_exactly_the_reads_under_it(audited, reproduced_repo):
    stages, reads = audited
    unaudited = unaudited_in(reproduced_repo)
    deleted = set()
    for name, paths in reads.items():
        for dep in [d for d in stages[name]["deps"] if any(covered(p, [d]) and not unaudited(p) for p in paths)]:
            mutated = copy.deepcopy(stages)
            mutated[name]["deps"].remove(dep)
            others = declared_paths(mutated[name])
            expected = sorted(p for p in paths if covered(p, [dep]) and not covered(p, others) and not unaudited(p))
            assert expected, (name, dep)
            assert undeclared_reads(mutated, reads, unaudited) == {name: expected}
            deleted.add(dep)
    assert "data/prepared" in deleted and any(d.startswith("models/") for d in deleted)  # data, not only code


@pytest.fixture(scope="module")
def branch_reads(reproduced_repo, tmp_path_factory):
    """Reads of the branches a param switches on, which the default run skips: an `epsilon`
    off attack.epsilons (summarize attacks at it, loading the checkpoints and the test split)
    and a harden.noise_grid (harden searches σ on the val split)."""
    repo = copy_repo(reproduced_repo, tmp_path_factory.mktemp("branches") / "repo")
    params = yaml.safe_load((repo / "params.yaml").read_text())
    assert 0.05 not in params["attack"]["epsilons"]
    params["epsilon"] = 0.05
    params["harden"]["noise_grid"] = [0.01, 0.02]
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    stages = resolve_stages(_dvc_yaml(repo), repo)
    run = [name for name in stages if _base(name) == "harden"] + ["summarize"]
    log = tmp_path_factory.mktemp("branch-reads")
    sh("dvc", "repro", "--single-item", *run, cwd=repo, environ=audited_env(repo, log))
    return repo, stages, run, reads_by_stage(read_logs(log), stages)


def test_reads_in_param_switched_branches_are_declared(branch_reads):
    repo, stages, run, reads = branch_reads
    assert set(reads) == set(run)
    for harden in run[:-1]:
        assert any(p.startswith("data/prepared/val") for p in reads[harden])  # the σ search ran
    assert any(p.startswith("models/") for p in reads["summarize"])  # the off-grid attack ran
    assert any(p.startswith("data/prepared/test") for p in reads["summarize"])
    assert undeclared_reads(stages, reads, unaudited_in(repo)) == {}


# ---------------------------------------------------------------- what `dvc repro` reruns


def _report_only_module(closures: dict[str, frozenset[str]]) -> str:
    only = sorted(m for m in closures["report"] if all(m not in c for s, c in closures.items() if s != "report"))
    assert only, "no module runs in the report stage alone"
    return only[0]


@pytest.fixture(scope="module")
def edited_repo(reproduced_repo, tmp_path_factory) -> Path:
    return copy_repo(reproduced_repo, tmp_path_factory.mktemp("edited") / "repo")


@pytest.mark.parametrize("pick", ["targeting", "report-only"])
def test_editing_a_module_invalidates_exactly_the_stages_that_run_it(edited_repo, pick):
    """Stages that import the module (all their foreach items) and no other, by `dvc status`
    (nothing runs): DVC hashes the repo's copy of the code, edited here."""
    closures = stage_closures(_dvc_yaml(edited_repo), edited_repo)
    module = "src/fragile/targeting.py" if pick == "targeting" else _report_only_module(closures)
    instances = resolve_stages(_dvc_yaml(edited_repo), edited_repo)
    expected = {name for name in instances if module in closures.get(_base(name), ())}
    if pick == "targeting":  # Algorithm 1: the attack curve and the evaluation at least
        assert {"attack_target@1", "evaluate@1"} <= expected and not expected & {"prepare", "train", "rank@1"}
    else:
        assert expected == {"report"}
    path = edited_repo / module
    before = path.read_bytes()
    try:
        path.write_bytes(before + b"\n# edited\n")
        status = json.loads(sh("dvc", "status", "--json", cwd=edited_repo).stdout)
    finally:
        path.write_bytes(before)
    assert set(status) == expected
    for name in expected:
        assert any(module in (change.get("changed deps") or {}) for change in status[name] if isinstance(change, dict))
    assert json.loads(sh("dvc", "status", "--json", cwd=edited_repo).stdout) == {}
