"""Whether the workflow modules have compiled bytecode to load.

Temporal's sandbox imports a workflow's module afresh for every workflow it loads (each new run,
each run evicted from the cache and replayed). With `PYTHONDONTWRITEBYTECODE` set, as many
container images do, Python never writes the `.pyc` files, so each of those imports compiles the
module's source again (11% of the worker's event-loop samples in a profile under load).
`python -m compileall` at install time (`make install` runs it) gives Python the bytecode to
read; the worker says at start when it is missing.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Iterable


def uncompiled_sources(classes: Iterable[type]) -> list[str]:
    """The source files of the modules defining `classes` that will be compiled at every import:
    Python may not write their bytecode and what is cached is missing or older than the source."""
    if not sys.dont_write_bytecode:
        return []  # the first import writes it
    missing = []
    for path in sorted({sys.modules[cls.__module__].__file__ or "" for cls in classes}):
        if not path.endswith(".py"):
            continue
        cached = importlib.util.cache_from_source(path)
        if not os.path.exists(cached) or os.path.getmtime(cached) < os.path.getmtime(path):
            missing.append(path)
    return missing
