"""pyproject's runtime dependencies are exactly what src/ and stages/ import (plus DVC, run as a
command): an undeclared import works here only because something else pulled it in, and an
unused declaration is weight every install carries."""

from __future__ import annotations

import ast
import functools
import re
import sys
from importlib.metadata import packages_distributions
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # the dev extra installs tomli on 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
RUNTIME_CODE = ("src", "stages")
OWN_PACKAGES = {"fragile", "stages"}
# Installed by `make install` with --no-deps (its pin requests~=2.25 would downgrade what DVC
# uses), so it cannot be a [project] dependency; it counts as declared while the Makefile installs it.
INSTALLED_BY_MAKEFILE = {"torchattacks"}
# Declared but run as a command, not imported: `dvc repro` runs the stages, and
# stages/aggregate.py calls `dvc exp show`.
COMMANDS = {"dvc"}


def normalise(name: str) -> str:
    """A distribution name as pip compares them (PEP 503): PyYAML == pyyaml, Pillow == pillow."""
    return re.sub(r"[-_.]+", "-", name).lower()


def declared_dependencies() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    return {normalise(re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", req).group(0)) for req in project["dependencies"]}


class _Imports(ast.NodeVisitor):
    """Top-level names of absolute imports, skipping `if TYPE_CHECKING:` bodies (never run)."""

    def __init__(self) -> None:
        self.names: set[str] = set()

    def visit_Import(self, node: ast.Import) -> None:
        self.names.update(alias.name.split(".")[0] for alias in node.names)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.level == 0 and node.module:
            self.names.add(node.module.split(".")[0])

    def visit_If(self, node: ast.If) -> None:
        test = node.test
        name = test.id if isinstance(test, ast.Name) else test.attr if isinstance(test, ast.Attribute) else None
        if name != "TYPE_CHECKING":
            self.visit(node.test)
            for child in node.body:
                self.visit(child)
        for child in node.orelse:
            self.visit(child)


def imported_modules(source: str) -> set[str]:
    visitor = _Imports()
    visitor.visit(ast.parse(source))
    return visitor.names - set(sys.stdlib_module_names) - OWN_PACKAGES - {"__future__"}


def runtime_imports() -> dict[str, list[str]]:
    """Third-party module -> the files under src/ and stages/ that import it."""
    found: dict[str, list[str]] = {}
    for folder in RUNTIME_CODE:
        for path in sorted((ROOT / folder).rglob("*.py")):
            for module in imported_modules(path.read_text(encoding="utf-8")):
                found.setdefault(module, []).append(str(path.relative_to(ROOT)))
    return found


@functools.cache
def _module_owners() -> dict[str, list[str]]:
    return packages_distributions()  # scans every installed distribution: seconds


def distributions(module: str) -> set[str]:
    return {normalise(d) for d in _module_owners().get(module, [])}


def test_the_import_scan_sees_lazy_imports_and_skips_type_checking_ones():
    source = (
        "from __future__ import annotations\nimport os, yaml.constructor\nfrom typing import TYPE_CHECKING\n"
        "from .local import x\nif TYPE_CHECKING:\n    import pandas as pd\nelse:\n    import numpy\n"
        "def f():\n    from PIL import Image\n"
    )
    assert imported_modules(source) == {"yaml", "numpy", "PIL"}
    assert distributions("yaml") == {"pyyaml"} and distributions("PIL") == {"pillow"}


def test_every_runtime_import_is_a_declared_dependency():
    declared = declared_dependencies() | INSTALLED_BY_MAKEFILE
    problems = []
    for module, files in sorted(runtime_imports().items()):
        provided_by = distributions(module)
        if not provided_by:
            problems.append(f"{module} (imported by {', '.join(files)}) is not installed: declare it and reinstall")
        elif not provided_by & declared:
            problems.append(f"{module} (imported by {', '.join(files)}) comes from {', '.join(sorted(provided_by))}, "
                            "which pyproject's [project].dependencies do not list")
    assert not problems, "\n".join(problems)


def test_every_declared_dependency_is_imported_or_run():
    used = set(COMMANDS)
    for module in runtime_imports():
        used |= distributions(module)
    unused = declared_dependencies() - used
    assert not unused, f"declared in [project].dependencies but imported nowhere under src/ or stages/: {sorted(unused)}"


def test_the_exceptions_still_hold():
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    for name in INSTALLED_BY_MAKEFILE:
        assert re.search(rf"pip install [^\n]*--no-deps [^\n]*\b{name}\b", makefile), f"the Makefile no longer installs {name}"
        assert name not in declared_dependencies(), f"{name} is declared now: drop it from INSTALLED_BY_MAKEFILE"
    assert COMMANDS <= declared_dependencies()
    assert "dvc" in (ROOT / "stages" / "aggregate.py").read_text(encoding="utf-8")
