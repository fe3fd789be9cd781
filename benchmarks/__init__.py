"""Measuring code for lightguard: data building, evaluation, topic, serving and transform benchmarks, training jobs.

Each job runs as `python -m benchmarks.<package>.<job>` from the repository root (its module docstring gives the
commands). Shared pieces live in one place: `benchmarks.layout` (where the checkout keeps data, models and scratch
files), `benchmarks.machine` (what the numbers ran on), `benchmarks.tables` (Markdown tables), `benchmarks.samples`
(deterministic prompt samples from the shipped data), `benchmarks.serving.server` (start a server and wait until it
is ready) and `benchmarks.serving.load` (the HTTP load generator). A new benchmark goes in the sub-package of its job,
imports only `index`'s public API and these pieces, and gets a test under tests/benchmarks/.
"""
