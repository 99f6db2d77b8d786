from __future__ import annotations

import time
import zipfile

import numpy as np
import pytest

from fragile.errors import FragileError
from fragile.npz import read_npz, write_npz


def _arrays() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {
        "conv_absolute.eps1": rng.random((50, 64)).astype(np.float32),
        "bn_relative.eps0": np.zeros((50, 64), dtype=np.float32),
        "epsilons": np.array([0.0, 0.1]),
        "fragile": np.array([1, 5, 7], dtype=np.int64),
        "scalar": np.array(3.5),
    }


def test_two_writes_at_different_times_and_in_any_order_are_byte_identical(tmp_path, monkeypatch):
    arrays = _arrays()
    monkeypatch.setattr(time, "time", lambda: 1_000_000_000.0)
    write_npz(tmp_path / "a.npz", arrays)
    monkeypatch.setattr(time, "time", lambda: 1_700_000_000.0)
    write_npz(tmp_path / "b.npz", dict(reversed(list(arrays.items()))))
    assert (tmp_path / "a.npz").read_bytes() == (tmp_path / "b.npz").read_bytes()
    with zipfile.ZipFile(tmp_path / "a.npz") as archive:
        assert [i.filename for i in archive.infolist()] == sorted(f"{name}.npy" for name in arrays)
        assert {i.date_time for i in archive.infolist()} == {(1980, 1, 1, 0, 0, 0)}
    # np.savez_compressed keeps the caller's order: the same arrays, other bytes.
    np.savez_compressed(tmp_path / "c.npz", **arrays)
    np.savez_compressed(tmp_path / "d.npz", **dict(reversed(list(arrays.items()))))
    assert (tmp_path / "c.npz").read_bytes() != (tmp_path / "d.npz").read_bytes()


def test_arrays_come_back_exactly_through_read_npz_and_np_load(tmp_path):
    arrays = _arrays()
    write_npz(tmp_path / "x.npz", arrays)
    back = read_npz(tmp_path / "x.npz")
    assert sorted(back) == sorted(arrays)
    for name, array in arrays.items():
        assert back[name].dtype == array.dtype and back[name].shape == array.shape
        assert np.array_equal(back[name], array)
    with np.load(tmp_path / "x.npz") as plain:
        assert np.array_equal(plain["conv_absolute.eps1"], arrays["conv_absolute.eps1"])


def test_the_archive_is_compressed(tmp_path):
    write_npz(tmp_path / "z.npz", {"zeros": np.zeros((1000, 64), dtype=np.float32)})
    assert (tmp_path / "z.npz").stat().st_size < 1000 * 64 * 4 / 50


def test_a_fortran_ordered_array_is_stored_as_the_same_bytes_as_its_c_copy(tmp_path):
    a = np.arange(12.0).reshape(3, 4)
    write_npz(tmp_path / "c.npz", {"a": a})
    write_npz(tmp_path / "f.npz", {"a": np.asfortranarray(a)})
    assert (tmp_path / "c.npz").read_bytes() == (tmp_path / "f.npz").read_bytes()


def test_objects_missing_and_damaged_files_are_refused(tmp_path):
    with pytest.raises(ValueError, match="Python objects"):
        write_npz(tmp_path / "o.npz", {"o": np.array([{"a": 1}], dtype=object)})
    assert not (tmp_path / "o.npz").exists()  # nothing half-written
    with pytest.raises(FragileError, match="not found"):
        read_npz(tmp_path / "missing.npz")
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(FragileError, match="not a readable .npz"):
        read_npz(tmp_path / "bad.npz")
