"""What each dvc.yaml stage runs and reads, against the deps it declares.

Two checks, both pure functions of a dvc.yaml dict (so a mutated one can be checked too):
- `missing_module_deps`: the project modules a stage's entry point imports, directly or through
  other project modules (every `import`/`from ... import` anywhere in a file, function-level lazy
  ones included, parent packages' `__init__.py` too), that no dep covers;
- `undeclared_reads`: the project files a stage process was seen to open for reading
  (tests/audit/sitecustomize.py logs them; `reads_by_stage` maps each log to its stage by the
  command line) that no dep, out or params file covers.
A dep covers a path equal to it or under it (a folder dep covers its files).

The entry point of `fragile <name>` is the module src/fragile/cli.py runs for it: stages/<name>.py.
The CLI dispatcher itself (src/fragile/cli.py) runs for every stage but only picks the stage
module, so it is no stage's dep: editing it (a new command) must not rerun the pipeline.
"""

from __future__ import annotations

import ast
import functools
import json
import shlex
from collections.abc import Callable, Iterable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Where project packages live (pyproject.toml's package-dir): fragile in src/, stages at the top.
SOURCE_ROOTS = ("src", ".")
STAGE_PACKAGE = "stages"  # `fragile <name>` imports stages.<name> (src/fragile/cli.py)
CLI_PROGRAM = "fragile"
DISPATCHER = "fragile.cli"  # [project.scripts] fragile = "fragile.cli:main"


# ---------------------------------------------------------------- static: the import closure


@functools.cache
def module_file(name: str, root: Path = ROOT) -> str | None:
    """Repo-relative path of project module `name` (a.b -> src/a/b.py or a/b/__init__.py), or
    None when it is not a project module (a third-party one, or an attribute, not a module)."""
    parts = name.split(".")
    for source in SOURCE_ROOTS:
        base = root / source / Path(*parts)
        for candidate in (base.with_suffix(".py"), base / "__init__.py"):
            if candidate.is_file():
                return candidate.relative_to(root).as_posix()
    return None


def _module_name(path: str) -> tuple[str, bool]:
    """(dotted name, is a package) of a repo-relative module path."""
    parts = Path(path).with_suffix("").parts
    if parts[0] in SOURCE_ROOTS:
        parts = parts[1:]
    package = parts[-1] == "__init__"
    return ".".join(parts[:-1] if package else parts), package


@functools.cache
def _imported_names(root: Path, path: str) -> frozenset[str]:
    """Every module name `path` imports anywhere (top level, functions, branches), with the
    `from X import y` names as X.y too (kept later only if X.y is a module)."""
    tree = ast.parse((root / path).read_text(encoding="utf-8"), filename=path)
    name, package = _module_name(path)
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: from the module's package, up level - 1 more
                anchor = name.split(".") if package else name.split(".")[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join(anchor + ([node.module] if node.module else []))
            else:
                base = node.module
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names if alias.name != "*")
    return frozenset(names)


def _with_parents(name: str) -> list[str]:
    """a.b.c -> [a, a.b, a.b.c]: importing a module runs its parent packages first."""
    parts = name.split(".")
    return [".".join(parts[: i + 1]) for i in range(len(parts))]


@functools.cache
def module_closure(entry: str, root: Path = ROOT) -> frozenset[str]:
    """Repo-relative paths of `entry` (a repo-relative module path) and every project module it
    imports, transitively, the parent packages of each included."""
    todo = [entry] + [f for p in _with_parents(_module_name(entry)[0])[:-1] if (f := module_file(p, root))]
    seen: set[str] = set()
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        for name in _imported_names(root, path):
            todo.extend(f for n in _with_parents(name) if (f := module_file(n, root)) and f not in seen)
    return frozenset(seen)


def stage_definitions(dvc_yaml: dict) -> dict[str, dict]:
    """Stage name -> its definition (a foreach/matrix stage's `do` template)."""
    return {name: stage.get("do", stage) for name, stage in dvc_yaml.get("stages", {}).items()}


def _commands(definition: dict) -> list[str]:
    cmd = definition.get("cmd", [])
    return [cmd] if isinstance(cmd, str) else list(cmd)


def entry_point(cmd: str, root: Path = ROOT) -> str | None:
    """The module `fragile <name> ...` runs (stages/<name>.py), None for another program; a
    `fragile` command naming no stage module is an error."""
    words = shlex.split(cmd)
    if not words or words[0] != CLI_PROGRAM:
        return None
    path = module_file(f"{STAGE_PACKAGE}.{words[1]}", root) if len(words) > 1 else None
    if path is None:
        raise ValueError(f"`{cmd}` runs no stage module {STAGE_PACKAGE}.{words[1:2]}: update tests/stage_deps.py "
                         "if src/fragile/cli.py maps commands to modules differently now")
    return path


def stage_closures(dvc_yaml: dict, root: Path = ROOT) -> dict[str, frozenset[str]]:
    """Stage name (as in dvc.yaml, not expanded) -> the project modules its commands run."""
    out = {}
    for name, definition in stage_definitions(dvc_yaml).items():
        entries = [e for cmd in _commands(definition) if (e := entry_point(cmd, root))]
        if entries:
            out[name] = frozenset().union(*(module_closure(e, root) for e in entries))
    return out


def covered(path: str, declared: Iterable[str]) -> bool:
    return any(path == d or path.startswith(d.rstrip("/") + "/") for d in declared)


def _paths(entries: Iterable[str | dict]) -> list[str]:
    """dvc.yaml lists hold a path or {path: options}."""
    return [e if isinstance(e, str) else next(iter(e)) for e in entries]


def missing_module_deps(dvc_yaml: dict, root: Path = ROOT) -> dict[str, list[str]]:
    """Stage name -> the project modules its entry point imports that none of its deps covers,
    for every stage whose command is `fragile <stage>`; {} when every stage declares its code."""
    out = {}
    for name, modules in stage_closures(dvc_yaml, root).items():
        deps = _paths(stage_definitions(dvc_yaml)[name].get("deps", []))
        missing = sorted(m for m in modules if not covered(m, deps))
        if missing:
            out[name] = missing
    return out


# ---------------------------------------------------------------- dynamic: the files opened


def resolve_stages(dvc_yaml: dict, repo: Path) -> dict[str, dict]:
    """`dvc_yaml`'s stages as DVC renders them in `repo`: foreach expanded (`name@item`), every
    ${...} filled in from the repo's params."""
    from dvc.parsing import DataResolver
    from dvc.repo import Repo

    with Repo(str(repo)) as dvc_repo:
        return DataResolver(dvc_repo, dvc_repo.root_dir, dvc_yaml).resolve()["stages"]


def read_logs(log_dir: Path) -> list[tuple[list[str], set[str]]]:
    """(argv, repo-relative paths opened for reading) of every logged stage process."""
    logs = []
    for log in sorted(log_dir.glob("*.jsonl")):
        lines = [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines()]
        logs.append((lines[0]["argv"], {line["read"] for line in lines[1:]}))
    return logs


def source_path(path: str) -> str:
    """A module's bytecode cache (pkg/__pycache__/mod.cpython-311.pyc) read for pkg/mod.py."""
    parts = path.split("/")
    if len(parts) >= 2 and parts[-2] == "__pycache__" and parts[-1].endswith(".pyc"):
        return "/".join(parts[:-2] + [parts[-1].split(".")[0] + ".py"])
    return path


def reads_by_stage(logs: list[tuple[list[str], set[str]]], stages: dict[str, dict]) -> dict[str, set[str]]:
    """Stage name -> the paths its processes read, each log matched to the stage whose command
    line it ran (one stage may have several processes, e.g. under torchrun)."""
    by_words = {tuple(shlex.split(cmd)[1:]): name for name, definition in stages.items()
                for cmd in _commands(definition)}
    out: dict[str, set[str]] = {}
    for argv, reads in logs:
        name = by_words.get(tuple(argv[1:]))
        if name is None:
            raise ValueError(f"a logged process ran {argv}, which is no stage's command")
        out.setdefault(name, set()).update(source_path(p) for p in reads)
    return out


def declared_paths(definition: dict) -> list[str]:
    """Paths a stage may read: its deps, its outs (metrics and plots too) and its params files."""
    entries = definition.get("params", [])  # a key of params.yaml, or {file: [keys]}
    params = ["params.yaml"] if any(isinstance(p, str) for p in entries) else []
    params += [next(iter(p)) for p in entries if isinstance(p, dict)]
    return [*_paths(definition.get("deps", [])), *params,
            *(p for key in ("outs", "metrics", "plots") for p in _paths(definition.get(key, [])))]


def undeclared_reads(stages: dict[str, dict], reads: dict[str, set[str]],
                     unaudited: Callable[[str], bool] = lambda _: False) -> dict[str, list[str]]:
    """Stage name -> the paths it read that none of its deps, outs or params files covers (and
    that `unaudited` does not excuse); {} when every stage declares what it reads. `stages` as
    `resolve_stages` gives them, `reads` as `reads_by_stage` does."""
    out = {}
    for name, paths in reads.items():
        declared = declared_paths(stages[name])
        undeclared = sorted(p for p in paths if not covered(p, declared) and not unaudited(p))
        if undeclared:
            out[name] = undeclared
    return out


def unaudited_in(repo: Path) -> Callable[[str], bool]:
    """Reads no dep can declare: git and DVC metadata (DVCLive reads the ignore files), paths
    .dvcignore excludes (DVC cannot track them: the train stage's resume state in .fragile/), and
    the CLI dispatcher's modules."""
    from dvc.repo import Repo

    with Repo(str(repo)) as dvc_repo:
        ignore = dvc_repo.dvcignore
    dispatcher = module_closure(module_file(DISPATCHER, repo), repo) if module_file(DISPATCHER, repo) else frozenset()

    def excused(path: str) -> bool:
        return (path in dispatcher or path.startswith((".git/", ".dvc/"))
                or path.rsplit("/", 1)[-1] in (".gitignore", ".dvcignore")
                or ignore.is_ignored_file(str(repo / path)))

    return excused
