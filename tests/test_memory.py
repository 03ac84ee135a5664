"""serving/process/memory.py, in-process: glibc's trim after a burst of passes, never during one."""

import itertools
import time

import numpy as np
import psutil
import pytest

from serving.process.memory import FreedMemoryTrim, glibc_malloc_trim

pytestmark = pytest.mark.skipif(glibc_malloc_trim() is None, reason="needs glibc")

HANG_S = 60  # only a trim thread that is stuck takes this long: not a speed target


def trims_reach(memory: FreedMemoryTrim, count: int) -> bool:
    """Whether ``memory`` gets to ``count`` trims before HANG_S."""
    deadline = time.monotonic() + HANG_S
    while memory.trims < count and time.monotonic() < deadline:
        time.sleep(0.01)
    return memory.trims >= count


def test_no_pass_no_trim() -> None:
    memory = FreedMemoryTrim(interval_s=0.05)
    time.sleep(0.3)  # six intervals: had anything but a pass woken the thread, it would have trimmed
    assert memory.trims == 0


def test_a_quiet_interval_after_passes_brings_one_trim() -> None:
    memory = FreedMemoryTrim(interval_s=0.05)
    memory.after_pass()
    assert trims_reach(memory, 1)
    time.sleep(0.3)  # six quiet intervals more: nothing new to give back
    assert memory.trims == 1
    memory.after_pass()
    assert trims_reach(memory, 2)


def test_passes_that_keep_coming_are_never_interrupted_by_a_trim() -> None:
    """A trim needs a whole interval without a pass, and brings one trim at most. Under load the
    gaps between passes are milliseconds; where this thread was held up for an interval (a busy
    machine) that gap may bring a trim. So the trims may not outnumber the gaps of an interval or
    more, whatever the machine's speed."""
    interval_s = 0.2
    memory = FreedMemoryTrim(interval_s=interval_s)
    calls = []  # (just before, just after) each after_pass: the pass is somewhere in between
    while len(calls) < 200:  # a pass every 5 ms: steady load, 5 s worth of intervals
        before = time.monotonic()
        memory.after_pass()
        calls.append((before, time.monotonic()))
        time.sleep(0.005)
    trims_under_load = memory.trims
    read = time.monotonic()
    # The longest each gap can have been, the last one up to the reading of the count.
    gaps = [later[1] - earlier[0] for earlier, later in itertools.pairwise(calls)] + [read - calls[-1][0]]
    quiet_gaps = sum(gap >= interval_s for gap in gaps)
    assert quiet_gaps < len(calls) // 2, "this machine was too busy to keep the load up"
    assert trims_under_load <= quiet_gaps, f"{trims_under_load} trims, {quiet_gaps} quiet gaps"
    assert trims_reach(memory, trims_under_load + 1)  # the load has stopped


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
    assert trims_reach(memory, 1)
    given_back = holes - process.memory_info().rss
    del kept  # held until here: the blocks between the holes
    assert given_back > 100 * 2**20, f"{given_back / 2**20:.0f} MiB given back"
