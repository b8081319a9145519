"""Mutation fuzzer for the targets in fuzz/targets.py: seeded, no dependencies beyond the library.

Each input is a seed encoding (a valid message, snapshot or file) changed by 1-8 random mutations:
bit flips, byte overwrites with boundary values (0x00, 0x7f, 0x80, 0xff), overwritten 2/4/8-byte
little-endian integers (0, 1, max, max-1, 2^31, a length near the input's), insertions, deletions,
duplicated or spliced chunks (also from another seed of the target), truncation, extension.
Decoding must raise nothing but DecodeError; a finding prints the target, the input (hex) and the
seed to replay it, and the run exits 1.

    python -m fuzz.run                          # every target, 1,000,000 inputs each (make fuzz)
    python -m fuzz.run --inputs 2000 --seed 3   # a short run
    python -m fuzz.run --target memo --inputs 100000
"""

from __future__ import annotations

import argparse
import random
import struct
import sys
import time

from fedprivacy.errors import DecodeError

from .targets import Target, targets

_BOUNDARY = (0x00, 0x01, 0x7F, 0x80, 0xFE, 0xFF)


def mutate(rng: random.Random, data: bytes, others: tuple[bytes, ...]) -> bytes:
    out = bytearray(data)
    for _ in range(rng.choice((1, 1, 1, 2, 2, 3, 4, 8))):
        kind = rng.randrange(10)
        n = len(out)
        if kind == 0 and n:
            i = rng.randrange(n)
            out[i] ^= 1 << rng.randrange(8)
        elif kind == 1 and n:
            out[rng.randrange(n)] = rng.choice(_BOUNDARY) if rng.random() < 0.5 else rng.randrange(256)
        elif kind == 2 and n >= 2:
            width = rng.choice((2, 4, 8))
            if n >= width:
                i = rng.randrange(n - width + 1)
                top = (1 << (8 * width)) - 1
                value = rng.choice((0, 1, top, top - 1, 1 << 31, n, n - i, n + 1, rng.randrange(top + 1)))
                out[i : i + width] = (value & top).to_bytes(width, "little")
        elif kind == 3:
            i = rng.randrange(n + 1)
            out[i:i] = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 9)))
        elif kind == 4 and n:
            i = rng.randrange(n)
            del out[i : i + rng.randrange(1, 17)]
        elif kind == 5 and n:
            i, j = sorted((rng.randrange(n), rng.randrange(n)))
            k = rng.randrange(n + 1)
            out[k:k] = out[i : j + 1]
        elif kind == 6 and others:
            other = rng.choice(others)
            if other:
                i = rng.randrange(len(other))
                j = rng.randrange(i, len(other) + 1)
                k = rng.randrange(n + 1)
                out[k : k + (j - i)] = other[i:j]
        elif kind == 7:
            del out[rng.randrange(n + 1) :]
        elif kind == 8:
            out += bytes(rng.randrange(256) for _ in range(rng.randrange(1, 33)))
        elif kind == 9 and n >= 4:
            i = rng.randrange(n - 3)
            out[i : i + 4] = struct.pack("<I", rng.choice((0, 1, 0xFFFFFFFF, 0x7FFFFFFF, n)))
    return bytes(out)


def fuzz_target(target: Target, inputs: int, seed: int) -> tuple[int, int]:
    """Run ``inputs`` mutated inputs; returns (decoded, rejected). Raises AssertionError on a finding."""
    rng = random.Random(f"{seed}/{target.name}")
    decoded = rejected = 0
    for seed_input in target.seeds:  # the seeds themselves must decode
        target.run(seed_input)
    for count in range(inputs):
        data = mutate(rng, rng.choice(target.seeds), target.seeds)
        try:
            target.run(data)
            decoded += 1
        except DecodeError:
            rejected += 1
        except Exception as exc:  # noqa: BLE001 -- this is what the fuzzer looks for
            raise AssertionError(
                f"{target.name}: input {count} (seed {seed}) raised {type(exc).__name__}: {exc}\ninput: {data.hex()}"
            ) from exc
    return decoded, rejected


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--inputs", type=int, default=1_000_000, help="mutated inputs per target (default 1,000,000)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--target", action="append", help="only this target (repeatable); default: all")
    args = parser.parse_args(argv)
    chosen = [t for t in targets() if not args.target or t.name in args.target]
    if not chosen:
        print(f"no such target; known: {', '.join(t.name for t in targets())}", file=sys.stderr)
        return 2
    failed = False
    for target in chosen:
        start = time.monotonic()
        try:
            decoded, rejected = fuzz_target(target, args.inputs, args.seed)
        except AssertionError as exc:
            print(f"FINDING {exc}", flush=True)
            failed = True
            continue
        print(f"{target.name:<18} {args.inputs:>10} inputs  {rejected:>10} DecodeError  {decoded:>8} decoded  "
              f"{time.monotonic() - start:8.1f} s", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
