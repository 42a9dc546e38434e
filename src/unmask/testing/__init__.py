"""Scaffolding for tests and benchmarks: hard footage made at run time from real face photos."""
