"""serving/process/memory.py, in-process: glibc's trim after a burst of passes, never during one."""

import time

import numpy as np
import psutil
import pytest

from serving.process.memory import FreedMemoryTrim, glibc_malloc_trim

pytestmark = pytest.mark.skipif(glibc_malloc_trim() is None, reason="needs glibc")


def trims_within(memory: FreedMemoryTrim, count: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while memory.trims < count and time.monotonic() < deadline:
        time.sleep(0.01)
    return memory.trims >= count


def test_no_pass_no_trim() -> None:
    memory = FreedMemoryTrim(interval_s=0.05)
    time.sleep(0.3)
    assert memory.trims == 0


def test_a_quiet_interval_after_passes_brings_one_trim() -> None:
    memory = FreedMemoryTrim(interval_s=0.05)
    memory.after_pass()
    assert trims_within(memory, 1, seconds=5)
    time.sleep(0.3)  # six quiet intervals more: nothing new to give back
    assert memory.trims == 1
    memory.after_pass()
    assert trims_within(memory, 2, seconds=5)


def test_passes_that_keep_coming_are_never_interrupted_by_a_trim() -> None:
    memory = FreedMemoryTrim(interval_s=1.0)  # a whole second's stall of this thread would fail it
    end = time.monotonic() + 2.5
    while time.monotonic() < end:  # a pass every 10 ms: steady load
        memory.after_pass()
        time.sleep(0.01)
    assert memory.trims == 0
    assert trims_within(memory, 1, seconds=5)  # the load has stopped


def test_a_trim_gives_the_holes_in_the_heap_back() -> None:
    """Blocks under glibc's mmap threshold come from the heap; freeing all but every tenth leaves
    holes that glibc keeps resident until a trim."""
    process = psutil.Process()
    blocks = [np.ones(64 * 1024 // 8) for _ in range(3000)]  # 64 KiB each, about 190 MiB
    kept = blocks[::10]
    del blocks
    holes = process.memory_info().rss
    memory = FreedMemoryTrim(interval_s=0.05)
    memory.after_pass()
    assert trims_within(memory, 1, seconds=5)
    given_back = holes - process.memory_info().rss
    del kept  # held until here: the blocks between the holes
    assert given_back > 100 * 2**20, f"{given_back / 2**20:.0f} MiB given back"
