"""Benchmarks that print measured figures: serving throughput and latency against the in-process
limit, training throughput against raw compute, memory under a soak, and py-spy profiles."""
