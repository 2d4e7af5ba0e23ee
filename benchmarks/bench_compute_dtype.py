"""float32 vs 16-bit compute through `explain(..., compute_dtype=...)`.

    python benchmarks/bench_compute_dtype.py --quick   # 96 px, 4 images (~1 min)
    python benchmarks/bench_compute_dtype.py           # 224 px, 8 images

MobileNetV2 (weights=None, batch normalisation calibrated on the images, so
activations keep a sane scale). For gradcam and gradients, the seconds per
`explain` call after a warm-up call (the copy and the trace are made once),
float32 vs each compute dtype, their ratio (> 1: the 16-bit run is faster), and
the maps' agreement with float32: Spearman rank correlation, top-10% overlap
and max abs difference over max |map|. On a CPU without fast 16-bit kernels
the 16-bit runs can be slower: the ratio is printed as measured.
"""

from __future__ import annotations

import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402
from _perf_common import agreement, build, calibrate, clock  # noqa: E402

import keras_interp as ki  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument(
        "--dtypes", default="mixed_bfloat16,bfloat16", help="comma-separated"
    )
    args = parser.parse_args()
    px, n = (96, 4) if args.quick else (224, 8)
    repeats = args.repeats or (2 if args.quick else 3)
    x = np.random.default_rng(0).uniform(-1, 1, (n, px, px, 3)).astype("float32")
    model = build("mobilenetv2", px)
    calibrate(model, x)
    y = np.arange(n) % 1000
    print(f"MobileNetV2 weights=None, {n} images {px}px, mean of {repeats} calls")
    print(
        "  method     | dtype          | fp32 s | 16-bit s | fp32/16-bit | "
        "Spearman | top-10% | max|diff| rel."
    )
    for method in ("gradcam", "gradients"):

        def run(dtype, method=method):
            return ki.explain(
                method, model, x, y, batch_size=n, verbose=0, compute_dtype=dtype
            )[1]

        t32, want = clock(lambda: run(None), repeats)
        for dtype in args.dtypes.split(","):
            t16, got = clock(lambda d=dtype: run(d), repeats)
            rho, top = agreement(want, got)
            rel = float(np.abs(got - want).max() / np.abs(want).max())
            print(
                f"  {method:10s} | {dtype:14s} | {t32:6.2f} | {t16:8.2f} | "
                f"{t32 / t16:10.2f}x | {rho:8.3f} | {top:7.2f} | {rel:.3f}"
            )


if __name__ == "__main__":
    main()
