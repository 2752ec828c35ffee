"""Throughput and latency benchmarks: blendserve beside plain Ray Serve and MLServer.

``make bench`` runs :mod:`benchmarks.run`; results go to ``BENCHMARKS.md`` and
``benchmarks/results/latest.json``. Not part of the installed package.
"""
