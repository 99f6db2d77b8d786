"""Named presets: a presets/<name>.yaml file of params overrides, run as one DVC experiment.

A preset file holds a one-line `description` and a flat `set` mapping of dotted params keys to
values, exactly what `dvc exp run -S key=value` would set:

    description: The paper's MNIST grid with ResNet-50 (...)
    set:
      model.arch: resnet50
      train.checkpoints: [10, 50, 100]

Its overrides are checked against the params dataclasses (fragile.params) on top of the
workspace's params.yaml, as DVC will apply them, before any command runs.
"""

from __future__ import annotations

import dataclasses
import difflib
import fnmatch
import re
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from fragile.errors import FragileError
from fragile.params import Params, load_params, params_from_dict

PRESETS_DIR = Path("presets")
NAME = re.compile(r"^[a-z0-9][a-z0-9-]*$")  # also a valid experiment name (a git ref)
FILE_KEYS = ("description", "set")
# Hydra's override grammar (what `-S` parses) reads these unquoted; anything else is quoted.
_PLAIN = re.compile(r"^[A-Za-z_/][A-Za-z0-9_/.\-]*$")
_HYDRA_WORDS = {"true", "false", "null", "nan", "inf"}


@dataclass(frozen=True)
class Preset:
    name: str
    path: Path
    description: str
    overrides: dict[str, Any]  # dotted params key -> value, in the file's order

    def set_params(self) -> list[str]:
        """The overrides as `dvc exp run -S` values, `key=value` in Hydra's override grammar."""
        return [f"{key}={hydra_value(value)}" for key, value in self.overrides.items()]

    def dvc_command(self, queue: bool = False) -> list[str]:
        sets = [arg for pair in self.set_params() for arg in ("-S", pair)]
        return ["dvc", "exp", "run", *(["--queue"] if queue else []), "-n", self.name, *sets]


def hydra_value(value: Any) -> str:
    """`value` as Hydra parses it back: lists in brackets without spaces, numbers as Python
    writes them (0 stays an int, as in a hand-typed `-S 'attack.epsilons=[0,0.1]'`), strings
    quoted only where they would read as something else (a number, a bool, a sweep)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(hydra_value(v) for v in value) + "]"
    if isinstance(value, str):
        if _PLAIN.match(value) and value.lower() not in _HYDRA_WORDS:
            return value
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
    raise TypeError(f"no -S form for {type(value).__name__}")  # load_preset admits none such


def load_preset(path: Path) -> Preset:
    """Read one preset file; its keys are checked against the params dataclasses (not yet its
    values: those need the workspace's params, `check`)."""
    name = path.stem
    if not NAME.match(name):
        raise FragileError(f"{path}: preset names are lower-case letters, digits and '-'; rename the file")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise FragileError(f"{path} is not valid YAML{where}; fix its syntax") from None
    if not isinstance(raw, dict) or set(raw) - set(FILE_KEYS) or not isinstance(raw.get("set"), dict):
        raise FragileError(f"{path}: a preset is `description: <one line>` and `set:` a mapping of params keys "
                           "to values (e.g. `model.arch: resnet50`)")
    description = raw.get("description") or ""
    if not isinstance(description, str) or "\n" in description.strip():
        raise FragileError(f"{path}: description must be one line of text")
    overrides = raw["set"]
    for key, value in overrides.items():
        _check_key(path, str(key), value)
    return Preset(name, path, description.strip(), {str(k): v for k, v in overrides.items()})


def available(folder: Path = PRESETS_DIR) -> list[Preset]:
    if not folder.is_dir():
        raise FragileError(f"no presets folder {folder}; run this in the project's root or pass --dir")
    return [load_preset(path) for path in sorted(folder.glob("*.yaml"))]


def select(patterns: list[str], folder: Path = PRESETS_DIR) -> list[Preset]:
    """The presets named by `patterns` (names or shell patterns such as 'paper-*'), each once,
    in name order; a pattern that names none is an error listing what there is."""
    presets = {path.stem: path for path in sorted(folder.glob("*.yaml"))} if folder.is_dir() else {}
    if not presets:
        raise FragileError(f"no presets in {folder}; run this in the project's root or pass --dir")
    chosen: set[str] = set()
    for pattern in patterns:
        matched = fnmatch.filter(presets, pattern)
        if not matched:
            close = difflib.get_close_matches(pattern, list(presets), n=1, cutoff=0.5)
            hint = f"did you mean '{close[0]}'?" if close else f"there are: {', '.join(presets)}"
            raise FragileError(f"no preset matches '{pattern}' in {folder}; {hint}")
        chosen.update(matched)
    return [load_preset(presets[name]) for name in sorted(chosen)]


def apply(raw: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """A copy of the params mapping `raw` with each dotted key set, as `-S` sets it."""
    out = _copy(raw)
    for key, value in overrides.items():
        *sections, leaf = key.split(".")
        node = out
        for section in sections:
            node = node.setdefault(section, {})
        node[leaf] = value
    return out


def check(preset: Preset, params_path: Path = Path("params.yaml")) -> Params:
    """The params an experiment of `preset` runs with: the workspace's params.yaml with the
    preset's overrides, validated; a bad value is one line naming the preset file."""
    load_params(params_path)  # its own errors name params.yaml, not the preset
    raw = yaml.safe_load(params_path.read_text(encoding="utf-8")) or {}
    try:
        return params_from_dict(apply(raw, preset.overrides), source=str(preset.path))
    except FragileError as err:
        message = str(err)
        raise FragileError(message if message.startswith(f"{preset.path}:") else f"{preset.path}: {message}") from None


def _check_key(path: Path, key: str, value: Any) -> None:
    """`key` must name one params field (not a whole section) and `value` be YAML scalars or a
    list of them: what one `-S key=value` can set."""
    cls: Any = Params
    parts = key.split(".")
    for i, part in enumerate(parts):
        fields = {f.name: f for f in dataclasses.fields(cls)}
        if part not in fields:
            leaves = _leaf_keys(Params)
            close = difflib.get_close_matches(key, leaves, n=1, cutoff=0.6)
            hint = f"did you mean '{close[0]}'?" if close else "params.yaml lists the keys"
            raise FragileError(f"{path}: unknown params key '{key}'; {hint}")
        hint = typing.get_type_hints(cls)[part]
        if dataclasses.is_dataclass(hint):
            if i == len(parts) - 1:
                raise FragileError(f"{path}: '{key}' is a section; set its keys one by one ({key}.<key>: value)")
            cls = hint
        elif i != len(parts) - 1:
            parent = ".".join(parts[: i + 1])
            raise FragileError(f"{path}: unknown params key '{key}'; '{parent}' has no sub-keys")
    scalars = (str, int, float, bool)
    if not (isinstance(value, scalars) or isinstance(value, list) and all(isinstance(v, scalars) for v in value)):
        raise FragileError(f"{path}: {key} must be a value or a list of values, got {value!r}")


def _leaf_keys(cls: Any, prefix: str = "") -> list[str]:
    out = []
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if dataclasses.is_dataclass(hints[f.name]):
            out += _leaf_keys(hints[f.name], f"{prefix}{f.name}.")
        else:
            out.append(f"{prefix}{f.name}")
    return out


def _copy(value: Any) -> Any:
    return {k: _copy(v) for k, v in value.items()} if isinstance(value, dict) else value
