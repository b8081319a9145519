"""How the command line prints results: ``key value`` lines, or one strict JSON object with ``--json``
(no NaN or Infinity: an undefined or infinite number is ``null``)."""

from __future__ import annotations

import json
import math


def strict(value: object) -> object:
    """``value`` with every non-finite float replaced by None (JSON null), recursively."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: strict(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [strict(v) for v in value]
    return value


def dumps(value: object, **kwargs: object) -> str:
    """Strict JSON text (``allow_nan=False`` after :func:`strict`), keys sorted."""
    return json.dumps(strict(value), sort_keys=True, allow_nan=False, **kwargs)  # type: ignore[arg-type]


def _emit(result: dict[str, object], as_json: bool) -> None:
    if as_json:
        print(dumps(result))
    else:
        width = max(len(k) for k in result)
        for key, value in result.items():
            shown = f"{value:.6g}" if isinstance(value, float) else value
            print(f"{key:<{width}}  {shown}")
