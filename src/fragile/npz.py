"""Compressed .npz archives with byte-identical output for identical arrays.

The bytes of an .npz must depend on the arrays alone, or DVC sees a changed output on every
run. np.savez_compressed writes members in the caller's dict order, and whether it stamps them
with the clock depends on the numpy and Python versions (old numpy wrote each member through a
temporary file and zipfile took that file's mtime). `write_npz` writes the zip itself: members
in sorted name order, a fixed date (1980-01-01, the zip epoch), a fixed "made by" system and
permissions, deflate at zlib's default level, each member in numpy's .npy format, atomically.
np.load reads the result; `read_npz` is the checked reader.
"""

from __future__ import annotations

import os
import zipfile
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from fragile.atomic import atomic_path
from fragile.errors import FragileError

_EPOCH = (1980, 1, 1, 0, 0, 0)
_UNIX = 3  # ZipInfo's "made by" system; the default depends on the platform writing it


def write_npz(path: str | os.PathLike[str], arrays: Mapping[str, np.ndarray]) -> None:
    """Write `arrays` (name -> numeric array) atomically to a compressed .npz."""
    with atomic_path(path) as tmp, zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name in sorted(arrays):
            array = np.asarray(arrays[name])
            if array.dtype.hasobject:
                raise ValueError(f"array {name!r} holds Python objects; store numbers only")
            info = zipfile.ZipInfo(f"{name}.npy", date_time=_EPOCH)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.create_system = _UNIX
            info.external_attr = 0o644 << 16
            # force_zip64 as np.savez does: the size is not known before the member is written
            with archive.open(info, "w", force_zip64=True) as member:
                np.lib.format.write_array(member, np.require(array, requirements="C"), allow_pickle=False)


def read_npz(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """All arrays of a .npz (pickled objects are refused, never run)."""
    path = Path(path)
    if not path.is_file():
        raise FragileError(f"{path} not found; run the stage that writes it first")
    try:
        with np.load(path, allow_pickle=False) as archive:
            return {name: archive[name] for name in archive.files}
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as err:
        raise FragileError(
            f"{path} is not a readable .npz archive ({type(err).__name__}); rerun the stage that writes it"
        ) from None
