"""Benchmarks of dask-gke in the sandbox (`make bench`); see benchmarks/README.md."""
