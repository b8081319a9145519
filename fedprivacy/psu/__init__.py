"""Private set union of index sets: masked IBLT over F_p (default) and the paper's randomized Bloom filter."""

from .bloom import BloomParameters, decode_bloom, encode_bloom
from .iblt import encode_reference, encode_set, peel
from .params import PSUParameters
from .policy import PSUPolicy
from .protocol import PSUClient, PSUResult, PSUServer, RerunPolicy, UnionDecodeFailure, run_psu_round

__all__ = [
    "BloomParameters",
    "PSUClient",
    "PSUParameters",
    "PSUPolicy",
    "PSUResult",
    "PSUServer",
    "RerunPolicy",
    "UnionDecodeFailure",
    "decode_bloom",
    "encode_bloom",
    "encode_reference",
    "encode_set",
    "peel",
    "run_psu_round",
]
