"""libgomp's waiting, set for the serving processes before torch loads it.

A lone request's forward pass runs on every core (``ModelRuntime.lone_image_threads``) in a
worker thread, since the event loop holds the main thread. Measured on 2 cores, resnet18 at 128
px, one image on 2 torch threads: 7.5-8.4 ms started from the main thread, 11.2-11.9 ms from
another; the same with ``GOMP_SPINCOUNT`` alone; 7.8-7.9 ms from another thread with the two
settings below, and no CPU used while idle. Served to one client: p50 13.8-15.4 -> 10.8 ms.

Why, as libgomp's source (``env.c``) reads: a thread waiting for the next parallel region spins
``GOMP_SPINCOUNT`` rounds (300,000 by default) before it sleeps, but only a "throttled" 100 once
libgomp manages more threads than there are CPUs. That a team started from a thread other than
the main one tips it over on 2 cores is our reading of the figures above, not seen in libgomp
itself; each layer of the pass then waits for a sleeping thread to wake.
``OMP_WAIT_POLICY=ACTIVE`` makes the throttled count 1,000, and ``GOMP_SPINCOUNT=300000`` keeps
the ordinary one at its default instead of ACTIVE's near-endless spin, so idle threads sleep.
"""

import importlib.util
import os
from collections.abc import MutableMapping
from pathlib import Path

LIBGOMP_WAITING = {"OMP_WAIT_POLICY": "ACTIVE", "GOMP_SPINCOUNT": "300000"}


def torch_bundles_libgomp() -> bool:
    """Whether the installed torch ships GNU's OpenMP (its Linux wheels), found without importing
    it. LLVM's and Intel's OpenMP read ``OMP_WAIT_POLICY=ACTIVE`` as "spin for ever"."""
    spec = importlib.util.find_spec("torch")
    if spec is None or spec.origin is None:
        return False
    return any((Path(spec.origin).parent / "lib").glob("libgomp*.so*"))


def spin_between_layers(environ: MutableMapping[str, str] = os.environ) -> dict[str, str]:
    """Sets ``LIBGOMP_WAITING`` in ``environ`` where torch uses libgomp and neither variable is
    set already (a user's choice stands); returns what it set. Takes effect in a process that
    loads torch afterwards: the serving processes inherit it from ``bentoml serve``."""
    if any(name in environ for name in LIBGOMP_WAITING) or not torch_bundles_libgomp():
        return {}
    environ.update(LIBGOMP_WAITING)
    return dict(LIBGOMP_WAITING)
