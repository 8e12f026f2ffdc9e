"""Benchmarks of memif and memifd against dpdk-testpmd (run ``python -m bench``)."""
