"""Image encoding on CPU: images/s at a few batch sizes, and the memory bound of streaming.

    python -m benchmarks.images [--model DIR | --shape tiny|b32] [--images 256]
                                [--batch-sizes 1,8,32] [--stream 500,2000] [--json]

The model: ``--model DIR``, a real CLIP folder (sentence-transformers or Hugging Face layout);
otherwise a CLIP with random weights built here (no CLIP weights exist on this machine):
``--shape tiny`` (the tests' tiny CLIP: 32-px images, 16-wide towers; what is measured is
mostly Pillow and the image processor) or ``--shape b32`` (the shape of clip-ViT-B-32: 224-px
images, 12 + 12 layers; random weights cost the same compute as trained ones). The output
names which one ran.

- images/s: generated 320x240 RGB images (a gradient with noise) through
  ``ImageEncoder.encode_images`` at each batch size, interleaved chunks so machine noise hits
  all alike; preprocessing (resize, crop, normalise) is counted in.
- the memory bound: in a fresh process per N, N images generated one at a time and streamed
  through encoding in batches (what ``index --format images`` does: nothing kept but a
  count), the peak RSS above the RSS once the model is loaded, at two N side by side; their
  ratio near 1 means memory does not grow with N.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import resource
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np

from benchmarks.common import rss_mib
from benchmarks.machine import describe, machine

SIZE = (320, 240)


def random_clip(folder: Path, shape: str) -> Path:
    """A CLIP with random weights saved in ``folder`` (Hugging Face layout): the tests' tiny
    one, or one shaped like clip-ViT-B-32 (its processor: 224-px resize and crop)."""
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor

    from tests.tiny_clip import tiny_clip

    hf = tiny_clip(folder)
    if shape == "b32":  # the default CLIPConfig is ViT-B/32's; keep the tiny character vocab
        vocab = CLIPConfig.from_pretrained(hf).text_config.vocab_size
        CLIPModel(CLIPConfig(text_config={"vocab_size": vocab})).save_pretrained(hf)
        proc = CLIPProcessor.from_pretrained(hf)
        proc.image_processor = CLIPImageProcessor(
            size={"shortest_edge": 224}, crop_size={"height": 224, "width": 224}
        )
        proc.save_pretrained(hf)
    return hf


def generated(n: int, seed: int = 0) -> Iterator[Any]:
    """``n`` PIL images made one at a time: a colour gradient plus noise (as a photo compresses
    worse than a flat colour, a processor resizes real detail)."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    w, h = SIZE
    ramp = np.linspace(0, 200, w, dtype=np.float32)[None, :, None]
    for _ in range(n):
        tint = rng.integers(0, 55, 3).astype(np.float32)[None, None, :]
        noise = rng.integers(0, 30, (h, w, 3)).astype(np.float32)
        yield Image.fromarray(np.clip(ramp + tint + noise, 0, 255).astype(np.uint8))


def throughput(encoder: Any, sizes: list[int], count: int, chunk: int = 32) -> dict[int, float]:
    """images/s at each batch size over the same images, chunks interleaved."""
    images = list(generated(count))
    seconds = dict.fromkeys(sizes, 0.0)
    encoder.batch_size = max(sizes)
    encoder.encode_images(images[:chunk])  # warm-up
    for i, start in enumerate(range(0, count, chunk)):
        part = images[start : start + chunk]
        for size in sizes if i % 2 == 0 else list(reversed(sizes)):
            encoder.batch_size = size
            began = time.perf_counter()
            encoder.encode_images(part)
            seconds[size] += time.perf_counter() - began
    return {size: count / s for size, s in seconds.items()}


def _stream(model: str, n: int, batch: int, out: Any) -> None:
    """In a fresh process: load, then stream ``n`` generated images through encoding."""
    from es_semantic.encoding.images import ImageEncoder

    encoder = ImageEncoder(model, batch_size=batch)
    encoder.encode_images(list(generated(2)))  # warm-up: allocator pools, lazy imports
    loaded = rss_mib()
    done, pending, began = 0, [], time.perf_counter()
    for image in generated(n, seed=1):
        pending.append(image)
        if len(pending) == batch:
            done += len(encoder.encode_images(pending))
            pending = []
    if pending:
        done += len(encoder.encode_images(pending))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    out.put({"n": done, "loaded_mib": loaded, "peak_mib": peak,
             "growth_mib": max(peak - loaded, 0.0),
             "images_per_s": done / (time.perf_counter() - began)})  # fmt: skip


def stream_peaks(model: str, counts: list[int], batch: int) -> list[dict[str, Any]]:
    """The peak RSS of streaming each N, each in its own process (peaks never go down)."""
    ctx = multiprocessing.get_context("spawn")
    rows = []
    for n in counts:
        queue = ctx.Queue()
        proc = ctx.Process(target=_stream, args=(model, n, batch, queue))
        proc.start()
        rows.append(queue.get())
        proc.join()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="a real CLIP folder (default: a random CLIP built here)")
    parser.add_argument("--shape", choices=("tiny", "b32"), default="tiny",
                        help="the random CLIP's shape when no --model")  # fmt: skip
    parser.add_argument("--images", type=int, default=256, help="images per batch size")
    parser.add_argument("--batch-sizes", default="1,8,32")
    parser.add_argument("--stream", default="500,2000", help="two N for the memory bound")
    parser.add_argument("--stream-batch", type=int, default=32)
    parser.add_argument("--json", action="store_true", help="figures and the machine as JSON")
    args = parser.parse_args()
    say = print if not args.json else (lambda m: print(m, file=sys.stderr))
    from es_semantic.encoding.images import ImageEncoder

    with tempfile.TemporaryDirectory() as tmp:
        model = args.model or str(random_clip(Path(tmp), args.shape))
        which = args.model or f"a random CLIP built here ({args.shape}; no real weights)"
        info, load = machine(), os.getloadavg()
        say(f"model: {which}\nmachine: {describe(info)}; load {load[0]:.2f}")
        encoder = ImageEncoder(model)
        sizes = [int(s) for s in args.batch_sizes.split(",")]
        speed = throughput(encoder, sizes, args.images)
        for size, rate in speed.items():
            say(f"batch {size:>3}: {rate:8.1f} images/s ({rate / speed[sizes[0]]:.2f}x batch "
                f"{sizes[0]})")  # fmt: skip
        counts = [int(n) for n in args.stream.split(",")]
        rows = stream_peaks(model, counts, args.stream_batch)
    for row in rows:
        say(f"stream {row['n']:>6} images: RSS {row['loaded_mib']:.0f} MiB loaded, peak "
            f"{row['peak_mib']:.0f} MiB (+{row['growth_mib']:.1f}); "
            f"{row['images_per_s']:.1f} images/s")  # fmt: skip
    ratio = rows[-1]["peak_mib"] / rows[0]["peak_mib"]
    say(f"peak RSS ratio N={rows[-1]['n']} / N={rows[0]['n']}: {ratio:.3f} "
        f"(images x{rows[-1]['n'] / rows[0]['n']:.0f})")  # fmt: skip
    if args.json:
        print(json.dumps({"model": which, "images_per_s": {str(k): v for k, v in speed.items()},
                          "stream": rows, "peak_ratio": ratio, "load": load, "machine": info},
                         indent=2))  # fmt: skip


if __name__ == "__main__":
    main()
