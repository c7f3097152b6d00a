"""Command-line value parsers of the canary judge's plugin options (light: no scipy import)."""

from __future__ import annotations

import argparse
import re

#: What ``--compare-with`` accepts: ``previous`` or ``previous:K``.
COMPARE_PATTERN = re.compile(r"previous(?::(\d+))?")


def parse_compare_with(value: str) -> int:
    """``previous`` -> 1, ``previous:K`` -> K (K >= 1); ValueError otherwise."""
    match = COMPARE_PATTERN.fullmatch(value.strip())
    k = int(match.group(1) or 1) if match else 0
    if k < 1:
        raise ValueError(
            f"--compare-with {value!r} is not understood; write previous or previous:K "
            "(K >= 1: the number of earlier passing runs to compare with)"
        )
    return k


def compare_with_option(value: str) -> int:
    """argparse type of ``--compare-with``: the number of earlier runs K."""
    try:
        return parse_compare_with(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
