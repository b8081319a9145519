"""Adapters: the only code in fedprivacy that does I/O (files today; engines and Flower next)."""
