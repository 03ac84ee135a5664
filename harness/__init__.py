"""What the tests and the benchmarks share: the real server on a free loopback port, the batch
sizes it reports on ``/metrics``, and synthetic face images to send it. Never shipped."""
