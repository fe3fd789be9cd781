"""Measuring code for lightguard: data building, evaluation, topic, serving and transform benchmarks, training jobs.

Each job runs as `python -m benchmarks.<package>.<job>` from the repository root (see docs/architecture.md and
each module's docstring); shared pieces live in one place: `benchmarks.layout` (where the checkout keeps data,
models and scratch files), `benchmarks.machine` (what the numbers ran on), `benchmarks.tables` (Markdown tables),
`benchmarks.samples` (deterministic prompt samples from the shipped data), `benchmarks.serving.server` (start a
server and wait until it is ready) and `benchmarks.serving.load` (the HTTP load generator).
"""
