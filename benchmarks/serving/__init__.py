"""Serving benchmarks against a real server: latency table, fairness, A/B of builds, soak and API fuzzing."""
