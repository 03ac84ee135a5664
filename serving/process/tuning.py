"""Every process-wide change the service makes, applied by one call as ``service.py`` is imported.

``bentoml serve`` imports ``service.py`` first, then starts the worker processes, which import it
again: environment variables set here reach every process, and patches apply in each. In order:

1. ``OTEL_SDK_DISABLED=true`` unless set: BentoML records an OpenTelemetry span per request even
   with no exporter and keeps them alive after the requests end (+32 MiB in a worker over 20,000
   requests, ``make soak``). ``OTEL_SDK_DISABLED=false`` traces.
2. Without tracing, BentoML's OpenTelemetry middleware is told to skip every URL
   (``tracing_config``): it would still make a span per request, about 0.1 ms each (1,236 -> 779
   Python calls per request in-process).
3. ``MALLOC_ARENA_MAX=2`` unless set: glibc gives every allocating thread an arena (up to 8 per
   core), each keeping what the largest pass it ran freed. resnet18's one-process tree after 32
   clients: 978-994 -> 937-951 MiB, requests/s no lower (interleaved).
4. libgomp's waiting between layers (``models/openmp.py``), before torch loads: a lone
   request's pass on every core from a worker thread, resnet18 at one client p50 16.0 -> 12.3 ms.
5. BentoML's process manager stops its processes before deleting the API-to-worker socket
   (``graceful.py``): requests in flight at SIGTERM get their answers (20 of 20, against 503s).
6. BentoML's traffic timeout and request metrics middlewares with less work per request, same
   behaviour (``bentoml_fixes.py``): in-process 15-16 -> 6.5 us and 19-29 -> 11-13 us a request.
7. ``BENTOML_DISABLE_GPU_ALLOCATION=1`` unless set: BentoML's allocator gives every worker of a
   service the same GPUs, and none to ``workers="cpu_count"``; ``plan.py`` puts each model
   process on its own GPU instead. ``CUDA_DEVICE_ORDER=PCI_BUS_ID`` unless set: CUDA then numbers
   the GPUs as NVML does, which ``plan.py`` reads their names and capabilities from.
8. The service's own log lines at INFO (BentoML's server logging passes only warnings from
   loggers not its own): each model process says where the model runs and how long each batch
   size's first pass took (``plan.py``).

Then the settings are read (``Settings.from_env``) and each topology's device and processes
planned (``plan.py``): a bad value, or ``FACE_ATTRIBUTES_DEVICE=cuda`` where CUDA cannot be used,
stops ``bentoml serve`` with one line naming the variable.
"""

import logging
import os
from typing import Any

from bentoml.exceptions import BentoMLConfigException

from models.openmp import spin_between_layers
from serving.process import bentoml_fixes
from serving.process.graceful import stop_processes_before_cleanup
from serving.process.plan import ProcessPlan, plan_processes
from serving.settings import Settings, SettingsError

ENVIRONMENT_DEFAULTS = {  # a user's value stands
    "OTEL_SDK_DISABLED": "true",
    "MALLOC_ARENA_MAX": "2",
    "BENTOML_DISABLE_GPU_ALLOCATION": "1",
    "CUDA_DEVICE_ORDER": "PCI_BUS_ID",
}


def tune_process() -> tuple[Settings, ProcessPlan]:
    """Apply changes 1-8 above to this process (and those it starts), then read the settings and
    plan each topology's processes (``plan.py``)."""
    for name, value in ENVIRONMENT_DEFAULTS.items():
        os.environ.setdefault(name, value)
    spin_between_layers()
    stop_processes_before_cleanup()  # takes effect in the `bentoml serve` process
    bentoml_fixes.apply()
    logging.getLogger("face_attributes").setLevel(logging.INFO)
    try:
        settings = Settings.from_env()
        return settings, plan_processes(settings)
    except SettingsError as error:  # BentoML prints its configuration errors without a traceback
        raise BentoMLConfigException(str(error)) from None


def tracing_config() -> dict[str, Any]:
    """The services' ``tracing`` configuration: every URL excluded from spans unless tracing is on."""
    return {"excluded_urls": [".*"]} if os.environ["OTEL_SDK_DISABLED"].lower() == "true" else {}
