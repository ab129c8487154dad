"""How many cores this process may use."""

from __future__ import annotations

import os


def free_cores() -> int:
    """Cores not busy with other work, at least one.

    On a shared 2-core box a thread pool sized to all cores runs many times slower than one
    sized to what is free (LightGBM was measured 13x slower), so pools are sized with this.
    ``CHURN_MAX_THREADS`` caps it: the load average lags by a minute, so processes started
    together (the test suite's workers) would each take every core before it shows them.
    """
    total = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    busy = round(os.getloadavg()[0]) if hasattr(os, "getloadavg") else 0
    cap = int(os.environ.get("CHURN_MAX_THREADS") or 0) or (total or 1)
    return max(1, min(cap, (total or 1) - busy))
