"""Test-only: record the project files a `fragile <stage>` process opens for reading.

With this folder on PYTHONPATH, Python imports this module at start-up in every process. When
FRAGILE_AUDIT_ROOT (the project repo) and FRAGILE_AUDIT_LOG (a folder) are set and the process's
command line is a stage command (`fragile <stage> ...`, or `python -m fragile.cli <stage> ...` as
torchrun starts it), an audit hook (`sys.addaudithook`, event `open`) appends every file inside
the repo opened for reading to FRAGILE_AUDIT_LOG/<pid>.jsonl, after a first line with the
process's argv. Other processes (dvc, git, the tests) are left alone. See tests/stage_deps.py.
"""

from __future__ import annotations

import json
import os
import sys

_WRITE_MODES = frozenset("wax+")


def _is_stage_command(argv: list[str]) -> bool:
    program = argv[0].replace(os.sep, "/") if argv else ""
    return len(argv) >= 2 and (os.path.basename(program) == "fragile" or program.endswith("fragile/cli.py"))


def _opened_for_reading(mode: object, flags: int) -> bool:
    if isinstance(mode, str):  # open(), io.open_code(), FileIO
        return not _WRITE_MODES & set(mode)
    return flags & os.O_ACCMODE == os.O_RDONLY and not flags & os.O_CREAT  # os.open()


def _install(root: str, log_dir: str) -> None:
    roots = sorted({os.path.abspath(root), os.path.realpath(root)}, key=len, reverse=True)
    log = open(os.path.join(log_dir, f"{os.getpid()}.jsonl"), "a", encoding="utf-8", buffering=1)
    log.write(json.dumps({"argv": sys.argv}) + "\n")
    seen: set[str] = set()

    def hook(event: str, args: tuple) -> None:
        if event != "open":
            return
        path, mode, flags = args
        if isinstance(path, int) or path is None or not _opened_for_reading(mode, flags or 0):
            return
        full = os.path.abspath(os.fsdecode(os.fspath(path)))
        if full in seen:
            return
        seen.add(full)
        for base in roots:
            if full.startswith(base + os.sep):
                if not os.path.isdir(full):  # a folder opened for its fd (fsync) is not read
                    log.write(json.dumps({"read": os.path.relpath(full, base).replace(os.sep, "/")}) + "\n")
                return

    sys.addaudithook(hook)


if os.environ.get("FRAGILE_AUDIT_ROOT") and os.environ.get("FRAGILE_AUDIT_LOG") and _is_stage_command(sys.argv):
    _install(os.environ["FRAGILE_AUDIT_ROOT"], os.environ["FRAGILE_AUDIT_LOG"])
