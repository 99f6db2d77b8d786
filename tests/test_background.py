"""Ordered background writes: order kept, all done when the block ends, errors not lost."""

from __future__ import annotations

import threading
import time

import pytest

from fragile.background import ordered_writes


def test_jobs_run_in_order_off_the_calling_thread_and_are_done_when_the_block_ends():
    done, threads = [], set()

    def job(name: str, delay: float) -> None:
        time.sleep(delay)
        threads.add(threading.current_thread().name)
        done.append(name)

    with ordered_writes() as later:
        later.submit(job, "checkpoint", 0.2)  # the slow first job still finishes first
        later.submit(job, "state", 0.0)
        assert done == []  # submit does not wait
    assert done == ["checkpoint", "state"]
    assert threads and threading.current_thread().name not in threads


def test_after_a_failed_job_the_rest_are_skipped_and_the_error_is_raised():
    done = []

    def fail() -> None:
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        with ordered_writes() as later:
            later.submit(fail)
            later.submit(done.append, "state naming the failed checkpoint")
    assert done == []


def test_the_next_submit_raises_an_earlier_failure():
    def fail() -> None:
        raise OSError("disk full")

    with ordered_writes() as later:
        later.submit(fail)
        time.sleep(0.2)
        with pytest.raises(OSError, match="disk full"):
            later.submit(print, "never")


def test_an_error_in_the_block_propagates_after_the_pending_writes():
    done = []
    with pytest.raises(KeyboardInterrupt):
        with ordered_writes() as later:
            later.submit(lambda: (time.sleep(0.2), done.append("written")))
            raise KeyboardInterrupt
    assert done == ["written"]
