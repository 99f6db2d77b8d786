"""A throw-away git + DVC copy of the project with a tiny config, for end-to-end tests."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
AUDIT = Path(__file__).resolve().with_name("audit")  # sitecustomize.py: the open-audit hook

TINY = {
    "seed": 0,
    "epsilon": 0.1,
    "train": {"epochs": 1, "checkpoints": [1], "batch_size": 128},
    "rank": {"max_examples": 100, "batch_size": 50},
    "attack": {"epsilons": [0.0, 0.1, 0.2], "max_examples": 40, "batch_size": 40, "pgd_epsilons": [0.1]},
    "harden": {"search_examples": 40},
    "evaluate": {"max_examples": 40, "batch_size": 40},
}


def env() -> dict[str, str]:
    out = dict(os.environ)
    out["PATH"] = f"{BIN}{os.pathsep}{out.get('PATH', '')}"
    out.update(GIT_AUTHOR_NAME="fragile tests", GIT_AUTHOR_EMAIL="tests@fragile.invalid",
               GIT_COMMITTER_NAME="fragile tests", GIT_COMMITTER_EMAIL="tests@fragile.invalid")
    return out


def audited_env(repo: Path, log_dir: Path) -> dict[str, str]:
    """env() for a run whose `fragile <stage>` processes log every file of `repo` they open for
    reading to `log_dir` (tests/audit/sitecustomize.py) and run `repo`'s own copy of the code,
    so that the modules they import are logged as files of `repo` too."""
    out = env()
    paths = [str(AUDIT), str(repo / "src"), str(repo), out.get("PYTHONPATH", "")]
    out["PYTHONPATH"] = os.pathsep.join(p for p in paths if p)
    out.update(FRAGILE_AUDIT_ROOT=str(repo), FRAGILE_AUDIT_LOG=str(log_dir))
    return out


def audit_log(repo: Path) -> Path:
    """Where `reproduced_repo`'s audited `dvc repro` left its logs (next to the repo)."""
    return repo.parent / "reads"


def sh(*args: str, cwd: Path, check: bool = True,
       environ: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    result = subprocess.run(list(args), cwd=cwd, env=environ or env(), capture_output=True, text=True, timeout=900)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(args)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


def merged(base: dict, override: dict) -> dict:
    out = dict(base)
    for key, value in override.items():
        out[key] = merged(base.get(key, {}), value) if isinstance(value, dict) else value
    return out


def make_repo(path: Path, overrides: dict | None = None) -> Path:
    """Copy dvc.yaml, stages/ and src/ into `path`, write tiny params, git init and commit."""
    path.mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / "dvc.yaml", path / "dvc.yaml")
    shutil.copytree(ROOT / "stages", path / "stages", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(ROOT / "src", path / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    params = merged(yaml.safe_load((ROOT / "params.yaml").read_text()), merged(TINY, overrides or {}))
    (path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    # The project's ignore files: git and DVC both skip the resume state in .fragile/.
    shutil.copy(ROOT / ".gitignore", path / ".gitignore")
    shutil.copy(ROOT / ".dvcignore", path / ".dvcignore")
    # model.file's default: the train stage depends on it, so it exists even when nothing is imported.
    shutil.copytree(ROOT / "models" / "import", path / "models" / "import")
    sh("git", "init", "-q", "-b", "main", cwd=path)
    sh("dvc", "init", "-q", cwd=path)
    sh("dvc", "config", "core.analytics", "false", cwd=path)
    shutil.copytree(ROOT / ".dvc" / "plots", path / ".dvc" / "plots", dirs_exist_ok=True)  # custom plot templates (series)
    sh("git", "add", "-A", cwd=path)
    sh("git", "commit", "-qm", "tiny pipeline", cwd=path)
    return path
