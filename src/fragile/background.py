"""Writes that run in order on one background thread.

The train stage hands its checkpoint and resume-state writes here, so the next epoch does
not wait for the disk. Jobs run in the order submitted (a resume state is written only after
the checkpoints it names); once one fails the rest are skipped, and its error is raised in
the submitting thread at the next `submit` or when the block ends.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any


class OrderedWriter:
    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="fragile-writer")
        self._error: BaseException | None = None

    def submit(self, job: Callable[..., object], *args: Any) -> None:
        self._raise_error()
        self._pool.submit(self._run, job, args)

    def close(self) -> None:
        """Wait for every job; raise the first error one met."""
        self._pool.shutdown(wait=True)
        self._raise_error()

    def _run(self, job: Callable[..., object], args: tuple[Any, ...]) -> None:
        if self._error is not None:
            return
        try:
            job(*args)
        except BaseException as err:  # noqa: BLE001 - raised again in the submitting thread
            self._error = err

    def _raise_error(self) -> None:
        if self._error is not None:
            err, self._error = self._error, None
            raise err


@contextlib.contextmanager
def ordered_writes() -> Iterator[OrderedWriter]:
    """An OrderedWriter whose jobs are all done when the block ends, also when it raises
    (then the block's own error is the one that propagates)."""
    writer = OrderedWriter()
    try:
        yield writer
    except BaseException:
        with contextlib.suppress(Exception):
            writer.close()
        raise
    writer.close()
