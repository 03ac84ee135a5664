"""serving/process/garbage.py, in-process: start-up's objects frozen out of the collector's passes."""

import gc
import weakref
from collections.abc import Iterator

import pytest

from serving.process.garbage import StartupObjectsFrozen


class Cycle:
    """An object in a reference cycle: only the cyclic collector can free it."""

    def __init__(self) -> None:
        self.itself = self


@pytest.fixture
def collector_restored() -> Iterator[None]:
    enabled = gc.isenabled()
    yield
    gc.unfreeze()  # the test process's objects back in the collector's care
    if enabled:
        gc.enable()


def test_objects_alive_at_start_up_leave_the_collectors_generations(collector_restored: None) -> None:
    kept = Cycle()
    assert any(tracked is kept for tracked in gc.get_objects())
    StartupObjectsFrozen().freeze_startup_objects()
    assert gc.get_freeze_count() > 0
    assert not any(tracked is kept for tracked in gc.get_objects())


def test_start_up_garbage_is_freed_not_frozen(collector_restored: None) -> None:
    gc.disable()  # no automatic pass may free it first: only the hook's own
    garbage = Cycle()
    freed = weakref.ref(garbage)
    del garbage
    StartupObjectsFrozen().freeze_startup_objects()
    assert freed() is None
