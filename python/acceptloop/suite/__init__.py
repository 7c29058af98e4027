"""The conformance kit: the registry, the scenarios, the runner and the matrix."""
