"""Exact discrete Gaussian sampling N_Z(0, S) with integer variance parameter S, vectorised.

Two samplers: :func:`discrete_gaussian` (rejection, exact, the reference) and
:func:`discrete_gaussian_table` (inversion with a certified table, within total variation 2^-107 per
sample, about 15x faster; the production noise). Both read the random source as described below and
in ``protocols/ddp/spec.md`` §3.

P[X = x] = exp(-x^2 / (2 S)) / sum_y exp(-y^2 / (2 S)) for every integer x. The algorithm is
Canonne, Kamath and Steinke ("The Discrete Gaussian for Differential Privacy", NeurIPS 2020,
Algorithms 1-3) with every acceptance decision made on integers: a coin Bernoulli(n/d) is one
uniform integer below d compared with n. No floating-point number is involved anywhere.

Building blocks (``t = isqrt(S) + 1``):

* ``Bern(exp(-n/d))`` for integers n >= 0, d >= 1: floor(n/d) coins Bern(exp(-1)) must all succeed,
  then Bern(exp(-r/d)), r = n mod d, by CKS Algorithm 1: K = 1; while Bern(r/(d K)): K += 1; the
  result is "K odd". Bern(r/(d K)) is drawn as Bern(r/d) and, for K >= 2, Bern(1/K) (both must
  succeed), which keeps every denominator at most 2^63.
* discrete Laplace with scale t (CKS Algorithm 2 with s = 1): U uniform below t, accept with
  Bern(exp(-U/t)), V = number of Bern(exp(-1)) successes before the first failure, X = U + t V, a
  fair sign coin B; (B = 1, X = 0) is rejected; the result is (1 - 2B) X.
* the Gaussian step (CKS Algorithm 3): a Laplace proposal Y is accepted with
  Bern(exp(-(|Y| t - S)^2 / (2 S t^2))). With |a| = ||Y| t - S| = c t + e (0 <= e < t), the exponent
  is c^2/(2S) + c e/(S t) + e^2/(2 S t^2), and the coin is three Bern(exp(-.)) coins in that order,
  all of which must succeed. With S <= 2^30 every numerator and denominator stays below 2^63 (the
  geometric V is below 88, so c < 89 t < 2^22).

* the geometric V with P[V >= k] = exp(-k): a uniform real read lazily against exact 128-bit
  expansions of exp(-k) (a 128-bit tie, or V >= 88, raises: probability below 2^-120).

Randomness layout (relied on by the vectors): every coin and every uniform integer consumes one
64-bit little-endian word of the random source. A pass draws one word for every still-active
element, in ascending element order; a word W drawn for a bound b is rejected when
W >= 2^64 - (2^64 mod b), and the rejected positions of a pass are redrawn, in order, from fresh
words until none remain, before the next pass starts; the value is W mod b. The passes, for the
elements still pending, are: Laplace U; the Bern(exp(-U/t)) coins (integer part, then the K loop:
one pass of Bern(r/d) then one of Bern(1/K) per K >= 2); the sign coin for the survivors; the
geometric loop (each pass one Bern(exp(-1))); then the three acceptance coins. Elements rejected
anywhere are retried together, in element order, from the start of their stage.

What leaks: running time and the number of words drawn depend on the sampled values (as in every
rejection sampler); the noise is secret only if the time a client takes is not observed at this
granularity. Use :func:`fedprivacy.hazmat.prg.system_random_bytes` (the default) outside tests.
"""

from __future__ import annotations

import decimal
from math import isqrt

import numpy as np

from ..errors import InvalidParameters
from .prg import RandomSource, system_random_bytes

__all__ = [
    "MAX_VARIANCE",
    "uniform_below_each",
    "bernoulli_exp",
    "geometric_exp_minus_one",
    "acceptance_terms",
    "discrete_laplace",
    "discrete_gaussian",
    "gaussian_table",
    "discrete_gaussian_table",
    "TABLE_TOTAL_VARIATION_LOG2",
]

MAX_VARIANCE = 1 << 30
_LIMIT = 1 << 63
_ONE = np.uint64(1)
_ZERO = np.uint64(0)


def _words(count: int, random_bytes: RandomSource) -> np.ndarray:
    if count == 0:
        return np.zeros(0, dtype=np.uint64)
    return np.frombuffer(random_bytes(8 * count), dtype="<u8").astype(np.uint64)


def uniform_below_each(bounds: np.ndarray, random_bytes: RandomSource) -> np.ndarray:
    """One uniform integer in [0, bounds[i]) per element (bounds in [1, 2^63]), by rejection."""
    bounds = np.asarray(bounds, dtype=np.uint64)
    if bounds.size == 0:
        return np.zeros(0, dtype=np.uint64)
    words = _words(bounds.size, random_bytes)
    with np.errstate(over="ignore"):
        excess = (_ZERO - bounds) % bounds  # 2^64 mod b
        limit = _ZERO - excess  # 2^64 - excess (wraps to 0 when excess is 0: nothing rejected)
    rejected = np.flatnonzero((excess != 0) & (words >= limit))
    while rejected.size:
        fresh = _words(rejected.size, random_bytes)
        words[rejected] = fresh
        rejected = rejected[fresh >= limit[rejected]]
    return words % bounds


def _coins(numerators: np.ndarray, denominators: np.ndarray, random_bytes: RandomSource) -> np.ndarray:
    """Bern(n_i / d_i) per element: a uniform integer below d_i compared with n_i."""
    return uniform_below_each(denominators, random_bytes) < numerators


def _bernoulli_exp_fraction(numerators: np.ndarray, denominators: np.ndarray, random_bytes: RandomSource) -> np.ndarray:
    """Bern(exp(-r/d)) for 0 <= r < d (CKS Algorithm 1): K counts successes of Bern(r/(dK)); K odd."""
    n = numerators.size
    k = np.ones(n, dtype=np.uint64)
    active = np.flatnonzero(numerators != 0)  # r = 0: exp(0) = 1, K stays 1 (odd)
    while active.size:
        success = _coins(numerators[active], denominators[active], random_bytes)
        second = np.flatnonzero(k[active] >= 2)  # Bern(1/K) for K >= 2, on all active elements with K >= 2
        if second.size:
            success[second] &= uniform_below_each(k[active[second]], random_bytes) == 0
        active = active[success]
        k[active] += _ONE
    return (k & _ONE).astype(bool)


def _expansion_table(terms: int) -> tuple[np.ndarray, np.ndarray]:
    """(hi, lo): the first 128 bits of exp(-k) for k = 1..terms, i.e. floor(exp(-k) 2^128) split in words.

    ``decimal`` computes exp correctly rounded; at 80 significant digits the error is below 10^-80
    relative, and the check below makes sure no value is within that error of an integer multiple
    of 2^-128, so every floor is exact.
    """
    hi, lo = [], []
    with decimal.localcontext(decimal.Context(prec=80, rounding=decimal.ROUND_HALF_EVEN)):
        scale = decimal.Decimal(1 << 128)
        for k in range(1, terms + 1):
            value = decimal.Decimal(-k).exp() * scale
            whole = int(value)
            margin = decimal.Decimal(10) ** (value.adjusted() - 75)
            assert whole < value - margin and value + margin < whole + 1, "expansion too close to a dyadic point"
            hi.append(whole >> 64)
            lo.append(whole & ((1 << 64) - 1))
    return np.array(hi, dtype=np.uint64), np.array(lo, dtype=np.uint64)


_GEOMETRIC_TERMS = 88  # exp(-88) < 2^-126
_EXP_HI, _EXP_LO = _expansion_table(_GEOMETRIC_TERMS)
_EXP_HI_ASCENDING = _EXP_HI[::-1].copy()


def geometric_exp_minus_one(count: int, random_bytes: RandomSource) -> np.ndarray:
    """V with P[V >= k] = exp(-k) (the number of Bern(exp(-1)) successes before a failure), exactly.

    R is a uniform real in [0, 1) read lazily, 64 bits per word; V = #{k >= 1 : R < exp(-k)}. The
    first word decides unless it equals the first 64 bits of some exp(-k); those elements (probability
    below 2^-57) draw a second word in one more pass. A tie on 128 bits, or R < exp(-88), has
    probability below 2^-120 and raises instead of returning a wrong value.
    """
    first = _words(count, random_bytes)
    below = _GEOMETRIC_TERMS - np.searchsorted(_EXP_HI_ASCENDING, first, side="right")  # #{k: hi_k > U1}
    position = np.searchsorted(_EXP_HI_ASCENDING, first, side="left")
    tied = np.flatnonzero((position < _GEOMETRIC_TERMS) & (_EXP_HI_ASCENDING[np.minimum(position, _GEOMETRIC_TERMS - 1)] == first))
    value = below.astype(np.uint64)
    if tied.size:
        second = _words(tied.size, random_bytes)
        hi, lo = _EXP_HI[None, :], _EXP_LO[None, :]
        u1, u2 = first[tied][:, None], second[:, None]
        if np.any((hi == u1) & (lo == u2)):
            raise InvalidParameters("a 128-bit tie with exp(-k); the random source is broken")
        value[tied] = ((hi > u1) | ((hi == u1) & (lo > u2))).sum(axis=1).astype(np.uint64)
    if count and int(value.max()) >= _GEOMETRIC_TERMS:
        raise InvalidParameters("R below exp(-88); the random source is broken")
    return value


def bernoulli_exp(numerators: np.ndarray, denominators: np.ndarray | int | np.integer, random_bytes: RandomSource) -> np.ndarray:
    """Bern(exp(-n_i / d_i)) per element, exactly; n_i >= 0, 1 <= d_i <= 2^63 (integers)."""
    n = np.asarray(numerators, dtype=np.uint64)
    d = np.broadcast_to(np.asarray(denominators, dtype=np.uint64), n.shape).copy()
    if d.size and (int(d.min()) < 1 or int(d.max()) > _LIMIT):
        raise InvalidParameters("denominators must be in [1, 2^63]")
    whole, rest = n // d, n % d
    alive = np.ones(n.size, dtype=bool)
    # exp(-floor(n/d)) = P[V >= floor(n/d)] for the geometric V (as floor(n/d) Bern(exp(-1)) successes).
    pending = np.flatnonzero(whole > 0)
    if pending.size:
        alive[pending] = geometric_exp_minus_one(pending.size, random_bytes) >= whole[pending]
    survivors = np.flatnonzero(alive)
    if survivors.size:
        alive[survivors] = _bernoulli_exp_fraction(rest[survivors], d[survivors], random_bytes)
    return alive


def _check_scale(value: int, name: str, limit: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not 1 <= int(value) <= limit:
        raise InvalidParameters(f"{name} must be an integer in [1, {limit}], got {value!r}")
    return int(value)


def discrete_laplace(scale: int, count: int, random_bytes: RandomSource = system_random_bytes) -> np.ndarray:
    """``count`` samples with P[X = x] proportional to exp(-|x| / scale) (integer scale), as int64."""
    t = _check_scale(scale, "scale", 1 << 31)
    out = np.zeros(count, dtype=np.int64)
    todo = np.arange(count)
    t64 = np.uint64(t)
    while todo.size:
        m = todo.size
        u = uniform_below_each(np.full(m, t64), random_bytes)
        keep = np.flatnonzero(bernoulli_exp(u, t, random_bytes))
        sign = uniform_below_each(np.full(keep.size, np.uint64(2)), random_bytes)
        v = geometric_exp_minus_one(keep.size, random_bytes)
        x = u[keep] + t64 * v
        ok = ~((sign == 1) & (x == 0))
        values = x.astype(np.int64)
        values[sign == 1] *= -1
        chosen = keep[ok]
        out[todo[chosen]] = values[ok]
        accepted = np.zeros(m, dtype=bool)
        accepted[chosen] = True
        todo = todo[~accepted]
    return out


def acceptance_terms(y: np.ndarray, variance: int, t: int) -> list[tuple[np.ndarray, np.uint64]]:
    """The Gaussian step's exponent (|y| t - S)^2 / (2 S t^2) as three fractions n_i / d (see the module doc).

    With |a| = ||y| t - S| = c t + e: c^2/(2S) + c e/(S t) + e^2/(2 S t^2). Integers only; requires
    S <= 2^30 and |c| < 2^31 so every numerator and denominator is below 2^63.
    """
    s64, t64 = np.uint64(variance), np.uint64(t)
    a = np.abs(np.abs(np.asarray(y, dtype=np.int64)) * np.int64(t) - np.int64(variance)).astype(np.uint64)
    c, e = a // t64, a % t64
    if c.size and int(c.max()) >= 1 << 31:  # needs a 2^16-pass geometric draw first; never in practice
        raise InvalidParameters("discrete Gaussian proposal out of range; the random source is broken")
    return [(c * c, np.uint64(2) * s64), (c * e, s64 * t64), (e * e, np.uint64(2) * s64 * t64 * t64)]


def discrete_gaussian(variance: int, count: int, random_bytes: RandomSource = system_random_bytes) -> np.ndarray:
    """``count`` exact samples of N_Z(0, variance) (integer variance in [1, 2^30]), as int64."""
    s = _check_scale(variance, "variance", MAX_VARIANCE)
    if isinstance(count, bool) or not isinstance(count, (int, np.integer)) or count < 0:
        raise InvalidParameters(f"count must be an integer >= 0, got {count!r}")
    t = isqrt(s) + 1
    out = np.zeros(int(count), dtype=np.int64)
    pending = np.arange(int(count))
    while pending.size:
        y = discrete_laplace(t, pending.size, random_bytes)
        terms = acceptance_terms(y, s, t)
        accept = np.ones(y.size, dtype=bool)
        for numerators, denominator in terms:  # all three must succeed, drawn in this order
            idx = np.flatnonzero(accept)
            accept[idx] = bernoulli_exp(numerators[idx], denominator, random_bytes)
        out[pending[accept]] = y[accept]
        pending = pending[~accept]
    return out


# -- the table sampler (the production path) ------------------------------------------------------------

TABLE_TOTAL_VARIATION_LOG2 = -107  # per sample, between the table sampler and N_Z(0, S)
_FIXED = 256  # bits of the fixed-point weights
_TAIL_EXPONENT = 100  # the table covers |x| <= L with L^2 / (2S) >= 100
_TABLES: dict[int, tuple[np.ndarray, np.ndarray, int]] = {}
_GUIDES: dict[int, tuple[np.ndarray, int]] = {}
_TABLE_CACHE = 8


def _fixed_exp(numerator: int, denominator: int) -> int:
    """floor(exp(-numerator/denominator) 2^_FIXED), within one unit (decimal exp is correctly rounded)."""
    with decimal.localcontext(decimal.Context(prec=100, rounding=decimal.ROUND_HALF_EVEN)):
        value = (-(decimal.Decimal(numerator) / decimal.Decimal(denominator))).exp() * (decimal.Decimal(2) ** _FIXED)
        return int(value)


def gaussian_table(variance: int) -> tuple[np.ndarray, np.ndarray, int]:
    """(hi, lo, L): F_k = floor(C_k 2^128) for k = 0 .. 2L - 1, where C_k is the cumulative distribution,
    at -L + k, of N_Z(0, S) restricted to [-L, L] (L = isqrt(200 S) + 2), split in two 64-bit words.

    Built once per variance with Python integers (cached): weights w_x = exp(-x^2/(2S)) by the exact
    recurrence w_{x+1} = w_x h q^x (h = exp(-1/(2S)), q = exp(-1/S)) in 256-bit fixed point. Each entry's
    floor is certified: the error of the fixed-point sums is bounded (every multiplication truncates by
    less than one unit) and the entry must be the same integer at both ends of the error interval;
    :class:`InvalidParameters` otherwise (not expected for any variance; the tests build the extremes).
    """
    s = _check_scale(variance, "variance", MAX_VARIANCE)
    if s in _TABLES:
        return _TABLES[s]
    limit = isqrt(2 * _TAIL_EXPONENT * s) + 2
    h, q = _fixed_exp(1, 2 * s), _fixed_exp(1, s)
    one = 1 << _FIXED
    weights = [one]
    ratio = h
    for _ in range(limit):
        weights.append(weights[-1] * ratio >> _FIXED)
        ratio = ratio * q >> _FIXED
    # weights[x] is below the exact value by at most 3x + 3 units (the ratio's error grows by <= 2 units
    # per step, each product truncates by < 1 unit); the bound below is generous.
    error_per_weight = 4 * limit + 8
    total = weights[0] + 2 * sum(weights[1:])
    total_error = (2 * limit + 1) * error_per_weight
    hi, lo = [], []
    running = 0
    mask = (1 << 64) - 1
    for k in range(2 * limit):
        running += weights[abs(k - limit)]
        running_error = (k + 1) * error_per_weight
        low = (running << 128) // (total + total_error)
        high = ((running + running_error) << 128) // total
        if low != high:
            raise InvalidParameters(f"variance {s}: a table entry cannot be certified to 128 bits")
        hi.append(low >> 64)
        lo.append(low & mask)
    table = (np.array(hi, dtype=np.uint64), np.array(lo, dtype=np.uint64), limit)
    if len(_TABLES) >= _TABLE_CACHE:
        oldest = next(iter(_TABLES))
        _TABLES.pop(oldest)
        _GUIDES.pop(oldest, None)
    _TABLES[s] = table
    return table


def _guide(variance: int, hi: np.ndarray) -> tuple[np.ndarray, int]:
    """guide[b] = #{k : hi_k < b 2^(64 - bits)} for every bucket b of the first word's top ``bits`` bits
    (plus one end entry): a bucket's entries are hi[guide[b]:guide[b + 1]]. Speeds up the lookup only;
    the sample is the same as a full binary search."""
    if variance in _GUIDES:
        return _GUIDES[variance]
    bits = int(min(21, max(8, int(hi.size).bit_length() + 2)))
    edges = np.arange(1 << bits, dtype=np.uint64) << np.uint64(64 - bits)
    guide = np.empty((1 << bits) + 1, dtype=np.int64)
    guide[:-1] = np.searchsorted(hi, edges, side="left")
    guide[-1] = hi.size
    _GUIDES[variance] = (guide, bits)
    return guide, bits


def discrete_gaussian_table(variance: int, count: int, random_bytes: RandomSource = system_random_bytes) -> np.ndarray:
    """``count`` samples within total variation 2^-107 of N_Z(0, variance) each, as int64, by inversion
    with a lazily read uniform real (the production noise; :func:`discrete_gaussian` is the exact
    rejection sampler it is checked against).

    Total variation: the sample is k with probability (F_k - F_{k-1}) 2^-128 exactly, each within
    2^-128 of the restricted law's C_k - C_{k-1}, over 2L + 1 <= 2^20 values (at most 2^-108), and the
    restriction to [-L, L] moves at most exp(-100) 2^12 < 2^-132 of the mass.

    R is uniform in [0, 1), read 64 bits per word; the sample is -L + #{k : F_k 2^-128 <= R}. The
    first word decides unless it equals the high word of some F_k (probability below 2L 2^-64); those
    elements draw a second word in one more pass (ascending element order). A 128-bit tie (probability
    below 2^-127 per sample) raises rather than guess.
    """
    if isinstance(count, bool) or not isinstance(count, (int, np.integer)) or count < 0:
        raise InvalidParameters(f"count must be an integer >= 0, got {count!r}")
    hi, lo, limit = gaussian_table(variance)
    guide, bits = _guide(int(variance), hi)
    first = _words(int(count), random_bytes)
    # index = #{k : hi_k < U1} (entries with hi < U1 are certainly <= R), found through the guide: a
    # bucket holds at most one entry in the bulk of the law; buckets with more take a binary search.
    bucket = (first >> np.uint64(64 - bits)).astype(np.int64)
    index = guide[bucket]
    width = guide[bucket + 1] - index
    single = np.flatnonzero(width == 1)
    index[single] += hi[index[single]] < first[single]
    several = np.flatnonzero(width > 1)
    if several.size:
        index[several] = np.searchsorted(hi, first[several], side="left")
    tied = np.flatnonzero(hi[np.minimum(index, hi.size - 1)] == first)
    tied = tied[index[tied] < hi.size]
    if tied.size:
        second = _words(tied.size, random_bytes)
        end = np.searchsorted(hi, first[tied], side="right")
        for position, (u2, start, stop) in enumerate(zip(second.tolist(), index[tied].tolist(), end.tolist())):
            run = lo[start:stop]  # the entries sharing this high word, in increasing order
            if np.any(run == np.uint64(u2)):
                raise InvalidParameters("a 128-bit tie with the table; the random source is broken")
            index[tied[position]] = start + int(np.searchsorted(run, np.uint64(u2), side="left"))
    return index.astype(np.int64) - np.int64(limit)
