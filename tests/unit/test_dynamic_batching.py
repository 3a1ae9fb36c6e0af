"""The dynamic batcher: coalescing, exact rows per caller, a bounded queue."""

import asyncio
import threading
import time

import numpy as np
import pytest

from es_semantic.service.batcher import DynamicBatcher, Overloaded


def vector_of(text: str) -> list[float]:
    return [float(len(text)), float(sum(map(ord, text)) % 997)]


def test_concurrent_requests_share_forward_passes_and_get_their_own_rows():
    calls: list[list[str]] = []
    passes: list[tuple[int, int]] = []

    def encode(texts, kind):
        calls.append(list(texts))
        time.sleep(0.02)
        return np.array([vector_of(t) for t in texts], dtype=np.float32)

    async def run():
        batcher = DynamicBatcher(encode, max_wait_ms=30, observe=lambda n, r: passes.append((n, r)))
        batcher.start()
        texts = [[f"text {i}", f"more {i}" * (i % 3)] for i in range(16)]
        results = await asyncio.gather(*(batcher.embed(t, "query") for t in texts))
        await batcher.stop()
        return texts, results

    texts, results = asyncio.run(run())
    for asked, rows in zip(texts, results, strict=True):
        assert rows.tolist() == [vector_of(t) for t in asked]  # exactly its rows, in order
    assert len(calls) < 16 and max(r for _, r in passes) > 1  # coalesced
    assert sum(n for n, _ in passes) == 32


def test_a_full_queue_refuses_at_once_instead_of_growing():
    gate = threading.Event()

    def encode(texts, kind):
        gate.wait(5)
        return np.zeros((len(texts), 2), dtype=np.float32)

    async def run():
        batcher = DynamicBatcher(encode, max_wait_ms=0, max_queue=1)
        batcher.start()
        first = asyncio.create_task(batcher.embed(["a"], "document"))  # taken by the worker
        await asyncio.sleep(0.05)
        second = asyncio.create_task(batcher.embed(["b"], "document"))  # waits in the queue
        await asyncio.sleep(0.01)
        with pytest.raises(Overloaded):
            await batcher.embed(["c"], "document")
        gate.set()
        done = await asyncio.gather(first, second)
        await batcher.stop()
        return done

    assert [r.shape for r in asyncio.run(run())] == [(1, 2), (1, 2)]


def test_an_encoder_error_reaches_every_caller_of_the_pass():
    def encode(texts, kind):
        raise RuntimeError("model failed")

    async def run():
        batcher = DynamicBatcher(encode, max_wait_ms=20)
        batcher.start()
        outcomes = await asyncio.gather(*(batcher.embed([str(i)], "query") for i in range(3)),
                                        return_exceptions=True)  # fmt: skip
        await batcher.stop()
        return outcomes

    assert all(isinstance(o, RuntimeError) for o in asyncio.run(run()))


def test_the_batched_encoder_sends_queries_through_the_batcher_from_the_loop_and_a_thread():
    from types import SimpleNamespace

    from es_semantic.service.state import BatchedEncoder

    kinds: list[str] = []

    def encode(texts, kind):
        kinds.append(kind)
        return np.array([vector_of(t) for t in texts], dtype=np.float32)

    async def run():
        batcher = DynamicBatcher(encode)
        batcher.start()
        config = SimpleNamespace(model_name="m")
        batched = BatchedEncoder(SimpleNamespace(config=config), batcher)  # type: ignore[arg-type]
        batched.loop = asyncio.get_running_loop()
        awaited = await batched.aencode_queries(["cat"])
        threaded = await asyncio.to_thread(batched.encode_queries, ["river bank"])
        await batcher.stop()
        return batched.config, awaited, threaded

    config, awaited, threaded = asyncio.run(run())
    assert config.model_name == "m" and kinds == ["query", "query"]
    assert awaited.tolist() == [vector_of("cat")] and threaded.tolist() == [vector_of("river bank")]


def test_passes_follow_each_other_in_the_encode_thread_while_the_loop_is_busy():
    """The next pass starts as soon as the last one ends, without waiting for the event loop
    (tokenising and encoding run in the encode thread, never on the loop)."""
    calls: list[tuple[list[str], str]] = []

    def encode(texts, kind):
        calls.append((list(texts), threading.current_thread().name))
        time.sleep(0.1)
        return np.array([vector_of(t) for t in texts], dtype=np.float32)

    async def run():
        batcher = DynamicBatcher(encode)
        batcher.start()
        first = asyncio.create_task(batcher.embed(["a"], "query"))
        await asyncio.sleep(0.03)  # "a" is in its pass
        second = asyncio.create_task(batcher.embed(["b"], "query"))
        await asyncio.sleep(0)  # "b" is queued
        time.sleep(0.4)  # the loop is busy: the second pass runs all the same
        during = len(calls)
        done = await asyncio.gather(first, second)
        await batcher.stop()
        return during, done

    during, done = asyncio.run(run())
    assert during == 2 and [c[0] for c in calls] == [["a"], ["b"]]
    assert {name for _, name in calls} == {"es-semantic-encode"}
    assert [d.tolist() for d in done] == [[vector_of("a")], [vector_of("b")]]


def test_a_failing_pass_fails_only_its_own_callers():
    started, gate = threading.Event(), threading.Event()

    def encode(texts, kind):
        if "bad" in texts:
            started.set()
            gate.wait(5)
            raise RuntimeError("model failed on this batch")
        return np.array([vector_of(t) for t in texts], dtype=np.float32)

    async def run():
        batcher = DynamicBatcher(encode)
        batcher.start()
        bad = asyncio.create_task(batcher.embed(["bad"], "query"))
        await asyncio.to_thread(started.wait, 5)  # its pass is running
        good = [asyncio.create_task(batcher.embed([f"good {i}"], "query")) for i in range(3)]
        await asyncio.sleep(0.02)
        gate.set()
        outcomes = await asyncio.gather(bad, *good, return_exceptions=True)
        await batcher.stop()
        return outcomes

    bad, *good = asyncio.run(run())
    assert isinstance(bad, RuntimeError)
    assert [g.tolist() for g in good] == [[vector_of(f"good {i}")] for i in range(3)]


def test_a_caller_that_leaves_is_skipped_and_loses_no_one_else():
    started, gate = threading.Event(), threading.Event()
    calls: list[list[str]] = []

    def encode(texts, kind):
        calls.append(list(texts))
        started.set()
        gate.wait(5)
        return np.array([vector_of(t) for t in texts], dtype=np.float32)

    async def run():
        batcher = DynamicBatcher(encode)
        batcher.start()
        first = asyncio.create_task(batcher.embed(["first"], "document"))
        await asyncio.to_thread(started.wait, 5)
        leaving = asyncio.create_task(batcher.embed(["leaving"], "document"))
        staying = [asyncio.create_task(batcher.embed([f"stay {i}"], "document")) for i in range(2)]
        await asyncio.sleep(0.02)  # all three queued behind the running pass
        leaving.cancel()
        await asyncio.sleep(0)
        gate.set()
        results = await asyncio.gather(first, *staying)
        await batcher.stop()
        return leaving, results

    leaving, results = asyncio.run(run())
    assert leaving.cancelled()
    assert calls == [["first"], ["stay 0", "stay 1"]]  # the one that left is never encoded
    assert [r.tolist() for r in results] == [[vector_of(t)] for t in ("first", "stay 0", "stay 1")]
