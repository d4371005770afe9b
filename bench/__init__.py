"""The benchmark: ack latency, platform calls per operation, handoff wall time, footprint."""
