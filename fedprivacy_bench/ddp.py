"""``fedprivacy bench ddp``: exact discrete Gaussian throughput, against OpenDP's in the same process.

Times the production noise, :func:`fedprivacy.hazmat.discrete_gaussian.discrete_gaussian_table`
(within total variation 2^-107 of exact, OS CSPRNG), and the exact rejection sampler
:func:`~fedprivacy.hazmat.discrete_gaussian.discrete_gaussian` for ``count`` samples at variance
``scale^2`` and, when OpenDP is importable (a development extra, never a runtime dependency),
OpenDP's exact discrete Gaussian (``make_gaussian`` on an integer vector) for ``opendp_count``
samples at the same scale. Medians over ``repeats`` runs (the table is built once, before timing,
as a client builds it once per variance); ratios are of samples per second in the same process.
"""

from __future__ import annotations

import statistics
import time

from fedprivacy.hazmat.discrete_gaussian import discrete_gaussian, discrete_gaussian_table, gaussian_table

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
    started = time.perf_counter()
    gaussian_table(variance)
    table_build = time.perf_counter() - started
    discrete_gaussian(variance, 10_000)  # warm up
    ours = _median_seconds(lambda: discrete_gaussian_table(variance, count), repeats)
    rejection = _median_seconds(lambda: discrete_gaussian(variance, count), repeats)
    result: dict[str, object] = {
        "variance": variance,
        "scale": scale,
        "count": count,
        "table_build_seconds": table_build,
        "seconds_median": ours,
        "samples_per_second": count / ours,
        "rejection_seconds_median": rejection,
        "rejection_samples_per_second": count / rejection,
        "repeats": repeats,
    }
    opendp = _opendp_sampler(scale, opendp_count) if opendp_count else None
    if opendp is not None:
        from importlib.metadata import version

        theirs = _median_seconds(opendp, max(1, repeats // 2))
        result.update({
            "baseline": f"opendp {version('opendp')} make_gaussian (exact discrete Gaussian)",
            "baseline_count": opendp_count,
            "baseline_samples_per_second": opendp_count / theirs,
            "speedup": (count / ours) / (opendp_count / theirs),
            "rejection_speedup": (count / rejection) / (opendp_count / theirs),
        })
    else:
        note = "OpenDP skipped (--opendp-count 0)" if not opendp_count else "OpenDP not installed: pip install opendp"
        result.update({"baseline": None, "speedup": None, "note": note})
    return result
