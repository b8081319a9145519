"""Benchmarks behind ``fedprivacy bench``: whole rounds in process, checked against the plain result."""
