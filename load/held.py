"""Locust, started ahead of the load test: ``python load/held.py LOCUST-ARGUMENTS``.

It imports Locust (which patches the standard library with gevent, as ``python -m locust``
does) and the modules the locustfile uses, then waits for one line on stdin. ``go`` runs
Locust's command line with the arguments given, exactly as ``python -m locust`` would; end of
input (the harness no longer needs it, or has exited) ends it having sent nothing. The harness
starts it while other checks run, so the load test does not spend Locust's start-up
(``postdeploy/performance/load.py``, ``hold_load``).
"""

from __future__ import annotations

import sys

import locust.main  # imported now, before the go: Locust's own start-up
import requests  # noqa: F401 - what the locustfile imports besides Locust

GO = "go"


def main() -> int:
    if sys.stdin.readline().strip() != GO:
        return 0
    sys.argv = ["locust", *sys.argv[1:]]
    locust.main.main()
    return 0


if __name__ == "__main__":
    sys.exit(main())
