"""What ``/metrics`` reports: images per batch (both topologies) and BentoML's request counts.

The counts are the whole server's. On a server other tests share, whatever they send between two
readings adds to the difference: compare it as a lower bound that this test's own requests must
reach (or, for batches, images minus batches, which another's batch never lowers); exact counts
need a server no other test sends anything (tests/test_service_fresh.py)."""

import re

import httpx

BATCH_HISTOGRAM = r"face_attributes_batch_size_(sum|count)"


def batch_counters(url: str) -> tuple[float, float]:
    """(images, batches) so far: a batch is a forward pass (one process) or a worker call (split)."""
    found = re.findall(rf"^{BATCH_HISTOGRAM} ([0-9.e+]+)$", httpx.get(f"{url}/metrics").text, re.M)
    values = {kind: float(value) for kind, value in found}
    return values.get("sum", 0.0), values.get("count", 0.0)


def answered_requests(url: str, endpoint: str, status: int) -> float:
    """BentoML's count of ``endpoint``'s answers with ``status``, summed over the workers."""
    labels = rf'[^}}]*endpoint="{re.escape(endpoint)}"[^}}]*http_response_code="{status}"[^}}]*'
    metrics = httpx.get(f"{url}/metrics").text
    return sum(
        map(float, re.findall(rf"^bentoml_service_request_total\{{{labels}\}} ([0-9.e+]+)$", metrics, re.M))
    )
