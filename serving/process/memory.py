"""Freed memory back to the system when the passes stop: glibc's ``malloc_trim``.

glibc returns only the free memory at the top of a heap; what a forward pass frees in the middle
stays resident, and with passes of every batch size the heap's holes add up. Measured in-process,
resnet18 at 128 px, two threads running passes of 1-16 images for 20 s: 459-486 MiB resident
against 340 loaded, and back to 340-350 after ``malloc_trim(0)``.

Trimming under load costs more than it returns: a trim took 4-7 ms there (glibc locks each arena
while it trims it), and the next passes fault the pages in again. Served once a second under load (one
process, resnet18, interleaved against no trim, 6 rounds of 4 s), it took 50-100 MiB off the
tree but 8-12 % of the requests/s at 32 and 64 clients (123 -> 113, 127 -> 112). So the trim
waits for a quiet ``interval_s``, no pass in it: under steady load it never runs, and a process
whose burst has ended gives its holes back within two intervals, where an orchestrator counting
the pod's memory sees it. On a C library other than glibc (musl, macOS) it does nothing.
"""

import ctypes
import threading
import time
from collections.abc import Callable


def glibc_malloc_trim() -> Callable[[int], int] | None:
    try:
        return ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return None


class FreedMemoryTrim:
    """Call ``after_pass`` when a forward pass has ended; a thread of its own trims once passes
    have stopped for ``interval_s``."""

    def __init__(self, interval_s: float = 1.0) -> None:
        self.interval_s = interval_s
        self.trims = 0
        self.passes_ran = threading.Event()
        self.malloc_trim = glibc_malloc_trim()
        if self.malloc_trim is not None:
            threading.Thread(target=self._trim_when_quiet, name="memory-trim", daemon=True).start()

    def after_pass(self) -> None:
        self.passes_ran.set()

    def _trim_when_quiet(self) -> None:
        assert self.malloc_trim is not None
        while True:
            self.passes_ran.wait()
            self.passes_ran.clear()
            time.sleep(self.interval_s)
            if not self.passes_ran.is_set():  # a quiet interval: the burst is over
                self.malloc_trim(0)
                self.trims += 1
