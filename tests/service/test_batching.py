"""Micro-batcher: concurrent requests share one guard call, results go back in order with the version used, one bad
request does not fail its neighbours, and the serving process never imports torch."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from service.serving.batching import MicroBatcher

REPO = Path(__file__).resolve().parents[2]


class GatedRun:
    """A fake guard call that blocks until released, recording each batch it was given."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []
        self.gate = threading.Event()
        self.version = 7

    def __call__(self, texts: list[str]) -> tuple[list[str], int]:
        self.gate.wait(10)
        self.calls.append(list(texts))
        if any(t == "bad" for t in texts):
            raise ValueError("text 'bad' is refused")
        return [t.upper() for t in texts], self.version


def run_async(coro_factory):  # type: ignore[no-untyped-def]
    return asyncio.run(coro_factory())


def test_concurrent_requests_are_gathered_while_a_batch_runs() -> None:
    run = GatedRun()

    async def scenario() -> list[tuple[list[str], int]]:
        with ThreadPoolExecutor(1) as pool:
            batcher: MicroBatcher[str] = MicroBatcher(run, pool, max_texts=64)
            first = asyncio.create_task(batcher.submit(["a"]))
            await asyncio.sleep(0)  # let the consumer take the first request (a scheduling yield, not a timed wait)
            while not batcher.stats.batches:
                await asyncio.sleep(0)
            rest = [asyncio.create_task(batcher.submit([f"b{i}", f"c{i}"])) for i in range(5)]
            await asyncio.sleep(0)
            run.gate.set()
            out = [await first] + [await t for t in rest]
            await batcher.close()
            return out

    results = run_async(scenario)
    assert results[0] == (["A"], 7)
    assert results[1:] == [([f"B{i}", f"C{i}"], 7) for i in range(5)]
    assert run.calls[0] == ["a"] and len(run.calls) == 2, "the five waiting requests ran as one batch"
    assert run.calls[1] == [t for i in range(5) for t in (f"b{i}", f"c{i}")]


def test_a_lone_request_is_not_delayed_and_batches_respect_max_texts() -> None:
    run = GatedRun()
    run.gate.set()

    async def scenario() -> list[tuple[list[str], int]]:
        with ThreadPoolExecutor(1) as pool:
            batcher: MicroBatcher[str] = MicroBatcher(run, pool, max_texts=3, max_wait_s=0.5)
            lone = await asyncio.wait_for(batcher.submit(["x"]), 0.4)  # the 0.5 s linger applies only to concurrency
            many = await asyncio.gather(*(batcher.submit([f"t{i}"]) for i in range(7)))
            await batcher.close()
            return [lone, *many]

    results = run_async(scenario)
    assert [r[0] for r in results] == [["X"]] + [[f"T{i}"] for i in range(7)]
    assert max(len(c) for c in run.calls) <= 3


def test_the_linger_ends_once_as_many_requests_as_recent_batches_are_in() -> None:
    """Closed-loop clients: once the batch holds as many requests as recent batches did, waiting out the rest of
    the linger would only idle the encoder; short of that, the batcher still lingers for the stragglers."""
    run = GatedRun()

    async def scenario() -> tuple[float, float]:
        loop = asyncio.get_running_loop()
        with ThreadPoolExecutor(1) as pool:
            batcher: MicroBatcher[str] = MicroBatcher(run, pool, max_texts=64, max_wait_s=5.0)
            first = asyncio.create_task(batcher.submit(["a"]))
            while not batcher.stats.batches:
                await asyncio.sleep(0)
            queued = [asyncio.create_task(batcher.submit([f"b{i}"])) for i in range(3)]
            await asyncio.sleep(0)
            run.gate.set()
            await asyncio.gather(first, *queued)  # a batch of 3 requests: traffic is concurrent, 3 are expected

            t = loop.time()
            await asyncio.gather(*(batcher.submit([f"c{i}"]) for i in range(3)))
            all_in = loop.time() - t

            async def late(text: str) -> tuple[list[str], int]:
                await asyncio.sleep(0.2)
                return await batcher.submit([text])

            t = loop.time()
            await asyncio.gather(batcher.submit(["d0"]), batcher.submit(["d1"]), late("d2"))
            straggler = loop.time() - t
            await batcher.close()
            return all_in, straggler

    all_in, straggler = run_async(scenario)
    assert run.calls[1:] == [["b0", "b1", "b2"], ["c0", "c1", "c2"], ["d0", "d1", "d2"]]
    assert all_in < 2.0, f"3 of 3 expected requests were in, yet the batch waited {all_in:.2f} s of the 5 s linger"
    assert 0.2 <= straggler < 2.0, "two of the expected 3 in, the batch lingered for the third and went once it came"


def test_one_bad_request_fails_alone() -> None:
    run = GatedRun()

    async def scenario() -> list[object]:
        with ThreadPoolExecutor(1) as pool:
            batcher: MicroBatcher[str] = MicroBatcher(run, pool)
            first = asyncio.create_task(batcher.submit(["warm"]))
            while not batcher.stats.batches:
                await asyncio.sleep(0)
            tasks = [asyncio.create_task(batcher.submit(t)) for t in (["ok1"], ["bad"], ["ok2", "ok3"])]
            await asyncio.sleep(0)
            run.gate.set()
            out = await asyncio.gather(first, *tasks, return_exceptions=True)
            await batcher.close()
            return list(out)

    results = run_async(scenario)
    assert results[1] == (["OK1"], 7) and results[3] == (["OK2", "OK3"], 7)
    assert isinstance(results[2], ValueError)


def test_http_requests_report_the_version_and_metrics_show_batches_and_torch(client: TestClient) -> None:
    body = client.post("/v1/classify", json={"text": "how do I bake bread"}).json()
    version = client.get("/readyz").json()["index_version"]
    assert body["index_version"] == version
    text = client.get("/metrics").text
    assert "lightguard_microbatch_batches" in text and "process_resident_memory_bytes" in text
    assert f"lightguard_torch_imported {float('torch' in sys.modules)}" in text


@pytest.mark.parametrize("module", ["service.app", "service.cli.main"])
def test_serving_imports_do_not_pull_torch(module: str) -> None:
    code = (
        f"import sys, {module}; from service.app import create_app; create_app(); "
        "sys.exit(3 if 'torch' in sys.modules else 0)"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"torch was imported by {module}: {done.stderr[-2000:]}"


def test_every_thread_that_searches_uses_the_configured_faiss_threads(client: TestClient) -> None:
    """OpenMP settings are per thread: the classify pool and the default executor (edits) must set theirs, or each
    search runs a spinning pool of one OpenMP thread per core next to ONNX Runtime's threads."""
    import faiss

    ctx = client.app.state.ctx  # type: ignore[attr-defined]
    seen = ctx.runtime._executor.submit(faiss.omp_get_max_threads).result()
    assert seen == ctx.settings.search_threads == 1

    async def in_default_executor() -> int:
        return await asyncio.to_thread(faiss.omp_get_max_threads)

    # the TestClient runs the app's loop in its own thread; ask that loop for a to_thread result
    assert client.portal.call(in_default_executor) == 1  # type: ignore[union-attr]


def test_numpy_blas_runs_one_thread_in_the_service(client: TestClient) -> None:
    """OpenBLAS starts one spinning thread per core; next to ONNX Runtime's threads a topic head's small solve then
    stalled for over a second on the loaded 2-core machine (service.serving.runtime.configure_threads)."""
    from threadpoolctl import threadpool_info

    # numpy's OpenBLAS (pthreads: one process-wide setting). FAISS bundles an OpenMP build of OpenBLAS, which
    # follows the per-thread OpenMP setting the executors' initializers make (the test above).
    blas = [p for p in threadpool_info() if p["user_api"] == "blas" and "numpy" in p["filepath"]]
    assert len(blas) == 1 and blas[0]["num_threads"] == 1, blas


def test_two_consumers_run_two_small_batches_at_once() -> None:
    """With `small_consumers=2` a second batch starts while the first is still running (both wait on one barrier,
    which a single consumer could never pass: the test would time out)."""
    barrier = threading.Barrier(2, timeout=10)

    def run(texts: list[str]) -> tuple[list[str], int]:
        barrier.wait()
        return [t.upper() for t in texts], 1

    async def scenario() -> list[tuple[list[str], int]]:
        with ThreadPoolExecutor(3) as pool:
            batcher: MicroBatcher[str] = MicroBatcher(run, pool, max_texts=1, small_consumers=2)
            out = await asyncio.gather(batcher.submit(["a"]), batcher.submit(["b"]))
            await batcher.close()
            return list(out)

    assert run_async(scenario) == [(["A"], 1), (["B"], 1)]
