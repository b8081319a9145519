"""Adapters: the only code in fedprivacy that does I/O (client storage, the MovieLens loader), the
framework-free interfaces a submodel FL system implements (``interfaces``), and the Flower adapters
(``flower``: the only code that imports ``flwr``; it needs the ``flower`` extra and is not imported
from here)."""
