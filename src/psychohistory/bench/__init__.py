"""Benchmarks shipped with the library: matchers and rewards."""
