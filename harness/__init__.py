"""What the tests and the benchmarks share: the real server on a free loopback port, the batch
sizes it reports on ``/metrics``, synthetic face images to send it and the closed-loop load
generator that sends them. Never shipped."""
