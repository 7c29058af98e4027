"""The benchmark: the C load generator against every implementation, interleaved, pinned, measured."""
