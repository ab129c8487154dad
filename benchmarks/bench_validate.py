"""Read + validate one data directory, the best of three runs (issue 13's cost).

Run it with each checkout on the path, alternating, to compare two versions of the code::

    git worktree add /tmp/old c426175
    for code in /tmp/old . /tmp/old .; do
        (cd $code && PYTHONPATH=$code CHURN_MAX_THREADS=2 python benchmarks/bench_validate.py DATA)
    done

(``/tmp/old`` has no ``benchmarks/bench_validate.py``: pass this file's absolute path.)
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from features.read import connect, read_data
from features.validate import validate


def main() -> None:
    data = Path(sys.argv[1])
    runs = []
    for _ in range(3):
        start = time.perf_counter()
        report = validate(read_data(data, connect("duckdb", threads=2)))
        runs.append(time.perf_counter() - start)
    print(
        f"{min(runs):.2f} s (runs: {', '.join(f'{r:.2f}' for r in runs)}); "
        f"{len(report.problems)} problems; end of the data: {getattr(report, 'end', None)}"
    )


if __name__ == "__main__":
    main()
