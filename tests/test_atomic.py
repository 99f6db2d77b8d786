"""Nothing half-written: a writer killed mid-write (a real SIGKILL, in a subprocess) leaves
the previous file in place, never a truncated one that a later stage would read."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from fragile import models
from fragile.atomic import write_json
from fragile.data import Split, load_split, write_prepared
from fragile.tables import write_csv

META = {"arch": "resnet18", "stem": "imagenet", "num_classes": 10, "in_channels": 1,
        "mean": [0.5], "std": [0.25], "epoch": 1, "dataset": "test"}

# The child patches the serializer each writer uses so that it writes half of the real bytes,
# flushes them to disk and then SIGKILLs its own process: a crash in the middle of a write.
CHILD = textwrap.dedent(
    """
    import io, json, os, signal, sys
    from pathlib import Path

    def die_halfway(fh, data):
        fh.write(data[: len(data) // 2])
        fh.flush()
        os.fsync(fh.fileno())
        os.kill(os.getpid(), signal.SIGKILL)

    kind, target = sys.argv[1], Path(sys.argv[2])
    if kind == "checkpoint":
        import torch
        from fragile import models
        real = torch.save
        def save(obj, fh):
            buf = io.BytesIO(); real(obj, buf); die_halfway(fh, buf.getvalue())
        torch.save = save
        models.write_checkpoint(target, torch.load(target, weights_only=True))
    elif kind == "json":
        from fragile import atomic
        atomic.json.dump = lambda data, fh, **kw: die_halfway(fh, json.dumps(data, **kw))
        atomic.write_json(target, {"new": list(range(1000))})
    elif kind == "csv":
        import pandas as pd
        from fragile.tables import write_csv
        pd.DataFrame.to_csv = lambda self, fh, **kw: die_halfway(fh, "a,b\\n" + "1,2\\n" * 1000)
        write_csv(target, pd.DataFrame({"a": [1]}))
    elif kind == "npy":
        import numpy as np
        from fragile import data
        def save(fh, array, allow_pickle):
            buf = io.BytesIO(); np.lib.format.write_array(buf, array); die_halfway(fh, buf.getvalue())
        np.save = save
        split = data.Split(np.full((64, 1, 8, 8), 7, np.uint8), np.arange(64) % 4)
        data.write_prepared(target, {"train": split, "val": split, "test": split}, 4, "new")
    """
)


def _kill_mid_write(kind: str, target: Path) -> None:
    out = subprocess.run([sys.executable, "-c", CHILD, kind, str(target)], capture_output=True, text=True, timeout=120)
    assert out.returncode == -9, f"the writer was not killed mid-write ({out.returncode}):\n{out.stderr}"


def _leftovers(folder: Path) -> list[Path]:
    return sorted(folder.glob(".*.tmp"))


def test_a_checkpoint_killed_mid_write_leaves_the_previous_one(tmp_path, tiny_model):
    path = tmp_path / "epoch_1.pt"
    models.save(path, tiny_model, META)
    before = path.read_bytes()
    _kill_mid_write("checkpoint", path)
    assert path.read_bytes() == before
    models.load(path)  # still a complete, loadable checkpoint
    (partial,) = _leftovers(tmp_path)  # the half-written bytes went to a temporary sibling
    assert 0 < partial.stat().st_size < len(before)


@pytest.mark.parametrize("kind", ["json", "csv"])
def test_json_and_csv_killed_mid_write_leave_the_previous_file(tmp_path, kind):
    path = tmp_path / f"out.{kind}"
    if kind == "json":
        write_json(path, {"old": True})
    else:
        write_csv(path, pd.DataFrame({"old": [1.5]}))
    before = path.read_text()
    _kill_mid_write(kind, path)
    assert path.read_text() == before
    (partial,) = _leftovers(tmp_path)
    assert partial.stat().st_size > 0


def test_prepared_arrays_killed_mid_write_are_never_read_as_complete(tmp_path):
    folder = tmp_path / "prepared"
    old = Split(np.zeros((4, 1, 8, 8), np.uint8), np.arange(4))
    write_prepared(folder, {"train": old, "val": old, "test": old}, 4, "old")
    _kill_mid_write("npy", folder)
    assert np.array_equal(load_split(folder, "train").images, old.images)  # arrays and manifest agree
    assert json.loads((folder / "manifest.json").read_text())["dataset"] == "old"
    assert _leftovers(folder)


def test_a_writer_that_raises_leaves_no_temporary_and_no_target(tmp_path):
    path = tmp_path / "x.json"
    with pytest.raises(TypeError):  # json.dump has streamed part of the list before it fails
        write_json(path, {"ok": list(range(1000)), "bad": object()})
    assert not path.exists() and not _leftovers(tmp_path)


def test_a_checkpoint_write_interrupted_by_an_exception_keeps_the_old_file(tmp_path, tiny_model, monkeypatch):
    path = tmp_path / "epoch_1.pt"
    models.save(path, tiny_model, META)
    before = path.read_bytes()

    def interrupted(*_args, **_kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", interrupted)
    with pytest.raises(KeyboardInterrupt):
        models.save(path, tiny_model, META)
    assert path.read_bytes() == before and not _leftovers(tmp_path)
