"""How a ``churn`` process loads its modules: with the cycle collector paused, then frozen.

Importing what a command needs (pandas, Ibis, scikit-learn, LightGBM, MLflow, matplotlib)
makes millions of objects that live until the process exits. Python's cycle collector
walks all of them in every full collection: during the imports, as the heap grows, and
then during the command's own work. A ``churn`` process runs one command and exits, so it
loads its modules with the collector paused and then moves everything that exists into
the collector's permanent generation (``gc.freeze``): later collections walk only the
objects the command makes, which are still collected. ``churn explain`` on the demo world
took 4.30-4.61 s this way against 4.76-5.19 s without it (6 alternating runs, see
benchmarks/README.md).

At exit, Python's shutdown would also run the collector over every object, in several full
passes (1.0-1.3 s of an 8 s ``churn explain``); a ``churn`` process freezes them first. Nothing
the command leaves needs those passes: its files are closed by then, and the scratch folders
(DuckDB's spilled data) are removed by their own exit hooks, which run whatever the collector
does (``tests/test_cli.py`` checks that none is left behind).

In any other process (a notebook, the tests) :func:`loading` only pauses the collector
while modules load: freezing would keep that process's garbage forever. A ``churn`` process
also keeps MLflow's artifact progress bars out of its output (:data:`QUIET_MLFLOW`).
"""

from __future__ import annotations

import atexit
import gc
import os
from collections.abc import Iterator
from contextlib import contextmanager

_own_process = False

#: MLflow draws a progress bar for each artifact it reads back while it checks a logged
#: model (three one-file "Downloading artifacts" bars in every ``churn train``), between
#: churn's own lines. A ``churn`` process turns them off unless the variable is set.
QUIET_MLFLOW = {"MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false"}


def own_process() -> None:
    """Say that this process runs one ``churn`` command and exits (the entry points): what
    :func:`loading` loads is frozen, and so is everything at exit; :data:`QUIET_MLFLOW`
    applies where the environment does not say otherwise."""
    global _own_process
    for key, value in QUIET_MLFLOW.items():
        os.environ.setdefault(key, value)
    _own_process = True
    atexit.unregister(gc.freeze)
    atexit.register(gc.freeze)


@contextmanager
def loading() -> Iterator[None]:
    """Import modules inside this block with the collector paused; in a ``churn`` process,
    freeze everything that exists when it ends."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if _own_process:
            gc.freeze()
        if enabled:
            gc.enable()


def churn() -> None:
    """The ``churn`` command (``[project.scripts]``)."""
    own_process()
    with loading():
        from pipelines.cli import main
    main()
