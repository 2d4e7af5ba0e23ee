"""Compiled once: an inline wrapper in a loop vs the same method as a string spec,
and trace counts over batch sizes, printed side by side.

    python benchmarks/bench_compile.py            # MobileNetV2 224x224, batch 8,
                                                  # SmoothGrad-20 (~3 minutes)
    python benchmarks/bench_compile.py --quick    # MobileNetV2 (alpha 0.35) 64x64,
                                                  # batch 4, SmoothGrad-5

Part 1 calls `explain()` `--calls` times with the spec
`"smooth(gradients, repetitions=R, seed=0)"`, then `--calls` times with
`smooth(gradients, repetitions=R, seed=0)` written inline (a new wrapper object
each call, as in a notebook cell or a loop). It prints the first call (tracing
included), the median of the others, and how many times the compiled function
was traced: both rows should trace once and cost the same per call.

Part 2 runs every registered method on the contract table's tiny model
(`keras_interp.testing.contract`) with batch sizes cycling 1..9 and prints the
trace count of its compiled function (at most 3: the first shapes, then the
relaxed batch axis; the chunk size of chunking methods travels as a tensor
shape, not a constant).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from keras_interp import methods  # noqa: E402
from keras_interp.engine import compiled_function, explain  # noqa: E402
from keras_interp.testing import contract  # noqa: E402


def time_calls(make_method, model, x, y, calls: int) -> tuple[float, float, object]:
    """(first call s, median of the other calls s, the last method)."""
    times, method = [], None
    for _ in range(calls):
        method = make_method()
        start = time.perf_counter()
        explain(method, model, x, y, batch_size=len(x), verbose=0)
        times.append(time.perf_counter() - start)
    rest = times[1:] or times
    return times[0], statistics.median(rest), method


def wrapper_vs_spec(args: argparse.Namespace) -> None:
    model = keras.applications.MobileNetV2(
        input_shape=(args.size, args.size, 3),
        alpha=args.alpha,
        weights=None,
        classes=1000,
    )
    x = np.random.default_rng(0).uniform(-1, 1, (args.batch, args.size, args.size, 3))
    x = x.astype("float32")
    y = np.arange(args.batch) * 7  # One unit per image (not all 1000).
    spec = f"smooth(gradients, repetitions={args.repetitions}, seed=0)"
    rows = {
        "string spec": lambda: methods.get(spec),
        "inline wrapper": lambda: methods.smooth(
            methods.gradients, repetitions=args.repetitions, seed=0
        ),
    }
    print(
        f"MobileNetV2 (alpha {args.alpha}, weights=None) {args.size}x{args.size}, "
        f"batch {args.batch}, SmoothGrad-{args.repetitions}, {args.calls} calls each"
    )
    print(
        f"{'how the method is given':<26}{'first s':>10}{'per call s':>12}{'traces':>8}"
    )
    for label, make in rows.items():
        first, per_call, method = time_calls(make, model, x, y, args.calls)
        traces = compiled_function(method, model).experimental_get_tracing_count()
        print(f"{label:<26}{first:>10.2f}{per_call:>12.3f}{traces:>8}")


def trace_counts(calls: int) -> None:
    source = contract.flat_model()
    x, y = contract.data(9)
    print(f"\nTraces after {calls} calls, batch sizes cycling 1..9 (tiny model)")
    print(f"{'method':<24}{'traces':>8}{'per call ms':>13}")
    for name in methods.METHODS:
        method, model, options = contract.case(name, source)
        start = time.perf_counter()
        for call in range(calls):
            explain(method, model, x, y, batch_size=call % 9 + 1, verbose=0, **options)
        per_call = (time.perf_counter() - start) / calls * 1000
        options = methods.check_options(method, options)
        fn = compiled_function(method, model, **options)
        print(f"{name:<24}{fn.experimental_get_tracing_count():>8}{per_call:>13.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a small run")
    parser.add_argument("--calls", type=int, help="explain() calls per row")
    parser.add_argument("--trace-calls", type=int, help="calls per method, part 2")
    args = parser.parse_args()
    quick = {"size": 64, "alpha": 0.35, "batch": 4, "repetitions": 5}
    full = {"size": 224, "alpha": 1.0, "batch": 8, "repetitions": 20}
    for key, value in (quick if args.quick else full).items():
        setattr(args, key, value)
    args.calls = args.calls or (4 if args.quick else 3)
    wrapper_vs_spec(args)
    trace_counts(args.trace_calls or (18 if args.quick else 27))


if __name__ == "__main__":
    main()
