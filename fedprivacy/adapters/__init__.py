"""Adapters: the only code in fedprivacy that does I/O (client storage, the MovieLens loader), and the
framework-free interfaces a submodel FL system implements (``interfaces``). Flower comes next."""
