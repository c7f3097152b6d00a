"""Reading a run's terminal output in self-tests."""

from __future__ import annotations

SHORT_SUMMARY = "short test summary info"


def body(output: str) -> str:
    """The output before pytest's short test summary.

    On CI (the ``CI`` or ``BUILD_NUMBER`` variable set) pytest prints each failed report's
    message in full in that summary, elsewhere trimmed to the terminal width, so a message
    counted over the whole output would count differently on CI and on a developer's machine.
    """
    return output.split(SHORT_SUMMARY, 1)[0]
