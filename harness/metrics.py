"""Images per batch, as both topologies report it on ``/metrics`` (a Prometheus histogram)."""

import re

import httpx

BATCH_HISTOGRAM = r"face_attributes_batch_size_(sum|count)"


def batch_counters(url: str) -> tuple[float, float]:
    """(images, batches) so far: a batch is a forward pass (one process) or a worker call (split)."""
    found = re.findall(rf"^{BATCH_HISTOGRAM} ([0-9.e+]+)$", httpx.get(f"{url}/metrics").text, re.M)
    values = {kind: float(value) for kind, value in found}
    return values.get("sum", 0.0), values.get("count", 0.0)
