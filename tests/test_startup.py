"""A ``churn`` process loads its modules with the cycle collector paused, then freezes them
(:mod:`pipelines.startup`); any other process is left as it was.

The figure this buys is in benchmarks/README.md; here, the behaviour: the ``churn`` script
goes through :func:`pipelines.startup.churn`, a ``churn`` process keeps collecting the
garbage its command makes, and a notebook or the tests never get frozen objects.
"""

from __future__ import annotations

import gc
import importlib.metadata as md
import subprocess
import sys

from pipelines.startup import loading


def test_the_churn_script_starts_through_the_startup_module() -> None:
    (script,) = md.entry_points(group="console_scripts", name="churn")
    assert script.value == "pipelines.startup:churn"


def test_a_churn_process_freezes_what_it_loaded_and_still_collects_new_garbage() -> None:
    code = (
        "import atexit, gc\n"
        "from pipelines import startup\n"
        # Registered first, so it runs last: after the exit hook own_process registers.
        "atexit.register(lambda: print('at exit', any(o is c for o in gc.get_objects())))\n"
        "startup.own_process()\n"
        "with startup.loading():\n"
        "    import pipelines.cli\n"
        "frozen = gc.get_freeze_count()\n"
        "a, b = [], []\n"
        "a.append(b); b.append(a)\n"  # a cycle only the collector can free
        "del a, b\n"
        "print(frozen, gc.isenabled(), gc.collect())\n"
        "c = [[]]; c[0].append(c)\n"  # a live object made after loading, frozen only at exit
        "print('before exit', any(o is c for o in gc.get_objects()))\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    loaded, before_exit, at_exit = run.stdout.splitlines()
    frozen, enabled, collected = loaded.split()
    # At exit, everything is frozen (out of the collector's generations) before Python's
    # shutdown would collect it; until then, what the command made is collectable.
    assert (before_exit, at_exit) == ("before exit True", "at exit False")
    # Importing the CLI makes hundreds of thousands of objects; all of them are frozen.
    assert int(frozen) > 100_000
    assert enabled == "True"
    assert int(collected) >= 2  # the two lists of the cycle


def test_any_other_process_only_pauses_the_collector_while_modules_load() -> None:
    frozen = gc.get_freeze_count()
    with loading():
        assert not gc.isenabled()
        import pipelines.startup  # noqa: F401  (already loaded: the block is what is tested)
    assert gc.isenabled()
    assert gc.get_freeze_count() == frozen


def test_a_paused_collector_is_left_paused() -> None:
    """A caller that had paused the collector itself finds it paused afterwards."""
    gc.disable()
    try:
        with loading():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()
