"""The encoder's tokeniser prefetch (#35 item 4): same vectors as the serial path, order kept,
errors raised in the caller, no thread left behind; pinned memory only for CUDA copies."""

import threading
import time
from collections.abc import Iterator

import numpy as np
import pytest
import torch

from es_semantic import Encoder
from es_semantic.encoding.prefetch import Prefetch, window_batches
from es_semantic.encoding.runtimes import host_tensors
from tests.unit.test_encoder import MIXED

TEXTS = MIXED + [f"passage {i} " + "word " * (i * 7 % 23) for i in range(20)]


def prefetch_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "es-semantic-prefetch"]


@pytest.fixture(autouse=True)
def no_thread_left() -> Iterator[None]:
    assert prefetch_threads() == []
    yield
    assert prefetch_threads() == []


def test_prefetch_keeps_order_and_stays_one_ahead():
    made: list[int] = []

    def numbers() -> Iterator[int]:
        for i in range(10):
            made.append(i)
            yield i

    with Prefetch(numbers()) as items:
        first = next(items)
        time.sleep(0.2)  # the worker runs ahead as far as the queue lets it
        assert len(made) <= 3  # the one taken, one queued, one made and waiting to be queued
        assert [first, *items] == list(range(10))


def test_an_error_in_the_worker_is_raised_in_the_caller():
    def failing() -> Iterator[int]:
        yield 1
        yield 2
        raise ValueError("text #3 cannot be tokenised")

    got = []
    with (
        pytest.raises(ValueError, match="text #3 cannot be tokenised"),
        Prefetch(failing()) as items,
    ):
        for item in items:
            got.append(item)
    assert got == [1, 2]


def test_closing_early_stops_the_worker_and_closes_the_source():
    closed = threading.Event()

    def endless() -> Iterator[int]:
        try:
            i = 0
            while True:
                yield i
                i += 1
        finally:
            closed.set()

    with Prefetch(endless()) as items:
        assert next(items) == 0
        assert prefetch_threads()  # the worker is live while it is used
    assert closed.is_set()
    with pytest.raises(StopIteration):
        next(items)


def test_keyboard_interrupt_in_the_caller_leaves_no_thread():
    with pytest.raises(KeyboardInterrupt), Prefetch(iter(range(100))) as items:
        for item in items:
            if item == 3:
                raise KeyboardInterrupt


def test_window_batches_cover_every_text_once_with_the_token_budget(tiny_bert_dir):
    enc = Encoder(tiny_bert_dir)
    truncated = np.zeros(len(TEXTS), dtype=bool)
    batches = list(window_batches(enc.tokenizer, TEXTS, 16, window=5, max_batch=3,
                                  max_tokens=40, feeds=enc._feeds, truncated=truncated))  # fmt: skip
    rows = [r for batch, _ in batches for r in batch]
    assert sorted(rows) == list(range(len(TEXTS)))
    for batch, feeds in batches:
        assert len(batch) <= 3
        ids = feeds["input_ids"]
        assert ids.shape[0] == len(batch)
        assert ids.shape[0] == 1 or ids.size <= 40
    assert truncated.any() and not truncated.all()


def test_prefetched_vectors_are_the_serial_ones(tiny_bert_dir):
    serial = Encoder(tiny_bert_dir, prefetch=False).embed(TEXTS)
    ahead = Encoder(tiny_bert_dir, prefetch=True, batch_size=len(TEXTS) - 1, max_batch_tokens=10**6)
    prefetched = ahead.embed(TEXTS)  # two windows, each one batch: the serial batches but one
    assert np.abs(serial.vectors - prefetched.vectors).max() <= 1e-5
    assert np.array_equal(serial.truncated, prefetched.truncated)


def test_one_window_starts_no_thread(tiny_bert_dir, monkeypatch):
    """A call that fits one window (a service's query batch) has nothing to overlap."""
    import es_semantic.encoding.encoder as encoder_module

    def no_thread(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise AssertionError("a prefetch thread for one window")

    monkeypatch.setattr(encoder_module, "Prefetch", no_thread)
    enc = Encoder(tiny_bert_dir, prefetch=True)
    assert np.array_equal(enc.embed(TEXTS).vectors, Encoder(tiny_bert_dir).embed(TEXTS).vectors)


def test_order_is_kept_across_windows_of_length_sorted_batches(tiny_bert_dir):
    serial = Encoder(tiny_bert_dir, prefetch=False).embed(TEXTS)
    windows = Encoder(tiny_bert_dir, prefetch=True, batch_size=2, max_batch_tokens=40)
    ahead = windows.embed(TEXTS)
    assert np.abs(serial.vectors - ahead.vectors).max() <= 1e-5
    assert np.array_equal(serial.truncated, ahead.truncated)
    for i in (0, 1, 5, len(TEXTS) - 1):  # each row is its own text's vector
        alone = windows.encode_documents([TEXTS[i]])[0]
        assert np.abs(alone - ahead.vectors[i]).max() <= 1e-5


class FailingTokenizer:
    """The encoder's tokenizer, failing on one text as a real one fails on bad input."""

    def __init__(self, inner, bad: str) -> None:
        self.inner, self.bad = inner, bad

    def __call__(self, texts, *args, **kwargs):
        if self.bad in texts:
            raise TypeError("TextEncodeInput must be Union[TextInputSequence, Tuple[...]]")
        return self.inner(texts, *args, **kwargs)

    def __getattr__(self, name):
        return getattr(self.inner, name)


@pytest.mark.parametrize("prefetch", [False, True])
def test_a_tokenizer_error_surfaces_as_it_does_serially(tiny_bert_dir, prefetch):
    enc = Encoder(tiny_bert_dir, prefetch=prefetch, batch_size=2)
    enc.tokenizer = FailingTokenizer(enc.tokenizer, TEXTS[-1])
    with pytest.raises(TypeError, match="TextEncodeInput must be"):
        enc.embed(TEXTS)
    assert enc.encode_documents(TEXTS[:3]).shape == (3, enc.dim)  # the lock was released


@pytest.mark.parametrize("error", [RuntimeError("CUDA out of memory"), KeyboardInterrupt()])
def test_a_model_error_mid_call_leaves_no_thread(tiny_bert_dir, error):
    enc = Encoder(tiny_bert_dir, prefetch=True, batch_size=2)
    real, runs = enc.runtime.run, []

    def run(feeds):
        runs.append(1)
        if len(runs) == 3:
            raise error
        return real(feeds)

    enc.runtime.run = run  # type: ignore[method-assign]
    with pytest.raises(type(error)):
        enc.embed(TEXTS)


def test_prefetch_is_on_for_cuda_only_by_default(tiny_bert_dir):
    assert Encoder(tiny_bert_dir, device="cpu").prefetch is False
    assert Encoder(tiny_bert_dir, device="cpu", prefetch=True).prefetch is True


class FakeCuda:
    type = "cuda"


def test_host_memory_is_pinned_for_cuda_copies_only(monkeypatch):
    pinned = []

    def pin(self):
        pinned.append(self)
        return self

    monkeypatch.setattr(torch.Tensor, "pin_memory", pin)
    feeds = {"input_ids": np.arange(6, dtype=np.int64).reshape(2, 3)}
    on_cpu = host_tensors(feeds, torch.device("cpu"))
    assert pinned == []
    on_cpu["input_ids"][0, 0] = 99  # no copy on the CPU: the array's own memory
    assert feeds["input_ids"][0, 0] == 99
    host_tensors(feeds, FakeCuda())
    host_tensors(feeds, "cuda:0")
    assert len(pinned) == 2


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_pinned_on_a_real_gpu():
    feeds = {"input_ids": np.ones((2, 3), dtype=np.int64)}
    assert host_tensors(feeds, torch.device("cuda"))["input_ids"].is_pinned()
