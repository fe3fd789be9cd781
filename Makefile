# lightguard — `make run` serves, `make test` tests; both set up everything they need from nothing.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: install install-ray run test lint typecheck bench bench-bulk eval data seed-vectors train gpu-pack gpu-smoke clean

## install: venv in .venv, pinned CPU torch first (so nothing pulls a CUDA build), the project, model artifacts
install: $(VENV)/.installed models/base/manifest.json

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -e ".[train,dev]"
	touch $@

models/base/manifest.json: $(VENV)/.installed index/encoding/export.py
	$(VENV)/bin/lightguard export --if-missing

## install-ray: the optional Ray Data extra for `lightguard classify --engine ray` (the server never imports it)
install-ray: $(VENV)/.installed-ray

$(VENV)/.installed-ray: $(VENV)/.installed pyproject.toml
	$(PIP) install -q -e ".[train,dev,ray]"
	touch $@

## run: start the service on 127.0.0.1:8000 (embedded SQLite in var/ by default)
run: install
	$(VENV)/bin/lightguard serve

## test: the full test suite (unit tests on a fake encoder, marked tests on the real ONNX model, PostgreSQL, uvicorn)
test: install
	$(VENV)/bin/pytest

lint: install
	$(VENV)/bin/ruff check index service benchmarks tests migrations
	$(VENV)/bin/ruff format --check index service benchmarks tests migrations

typecheck: install
	$(VENV)/bin/mypy index service benchmarks

## data: rebuild data/ from ../shared/datasets (deterministic)
data: install
	$(PY) -m benchmarks.data.build

## seed-vectors: write data/seed-vectors.{json,bin}, the vectors of every seed text under the installed base model
## (and the fits a build on them computes), so a fresh clone's first start embeds none; run after a change of data/,
## the model, index/encoding/onnx.py's arithmetic or onnxruntime (a marked test fails until then)
seed-vectors: install
	$(VENV)/bin/lightguard export-seed-vectors

## eval: random-split and out-of-source evaluation of the scorers (writes docs/results.md tables and reports/)
eval: install
	$(PY) -m benchmarks.evaluation.evaluate

## train: fine-tune the encoder into models/finetuned (18-29 min on 2 shared cores; skipped when current). Not the
## serving default yet: it beats base out of source only modestly (docs/ablation.md); serve it with LIGHTGUARD_MODEL_DIR.
train: install
	$(VENV)/bin/lightguard train --if-stale

## gpu-pack: what a lent GPU machine needs for the fine-tune candidates (.gpu/: fp16 base weights, wheels; checks the
## 64 MiB a device call may carry). gpu-smoke: the device script dry-run here on CPU, after gpu-pack (docs/ablation.md)
gpu-pack: install
	$(PY) -m benchmarks.training.gpu_pack

gpu-smoke: install
	LIGHTGUARD_FLAT_FAISS=1 GPU_RUN_SKIP_WHEELS=1 PYTHON=$(PY) OUT=var/gpu-run/smoke \
		bash benchmarks/training/gpu_run.sh --smoke --budget-s 1800

## bench: latency / throughput benchmark table
bench: install
	$(PY) -m benchmarks.serving.bench

## bench-bulk: rows/s of the local engine and Ray Data with 1 and 2 actors on one 100k-row file (docs/performance.md)
bench-bulk: install install-ray
	$(PY) -m benchmarks.serving.bulk

clean:
	rm -rf $(VENV) models var .cache reports .pytest_cache .mypy_cache .ruff_cache .gpu
