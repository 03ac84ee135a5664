"""Images per forward pass, as each topology reports it on ``/metrics`` (a Prometheus histogram)."""

import re

import httpx

BATCH_HISTOGRAMS = {
    "service:FaceAttributes": (
        r'bentoml_service_adaptive_batch_size_(sum|count)\{[^}]*method_name="classify"[^}]*\}'
    ),
    "service:FaceAttributesOneProcess": r"face_attributes_batch_size_(sum|count)",
}


def batch_counters(url: str, target: str) -> tuple[float, float]:
    """(images, forward passes) so far, from the served topology's batch-size histogram."""
    found = re.findall(rf"^{BATCH_HISTOGRAMS[target]} ([0-9.e+]+)$", httpx.get(f"{url}/metrics").text, re.M)
    values = {kind: float(value) for kind, value in found}
    return values.get("sum", 0.0), values.get("count", 0.0)
