"""Servers the ports are compared against in the benchmark."""
