"""Mutation fuzzing of every decoder and on-disk format (see fuzz/run.py)."""
