"""Benchmarks (``ember bench ...``) and the router's offline refit."""
