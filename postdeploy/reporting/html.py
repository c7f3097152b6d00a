"""The HTML report for stakeholders, built from ``reports/allure-results`` by Allure 3.

``postdeploy report`` (and ``tox -e report``) runs the Allure 3 command line (npm package
``allure``, installed in ``node_modules`` by ``npm install`` / ``./bootstrap``) as
``allure generate RESULTS --config CONFIG --output DIR``. The config is written for each
build (``allurerc.mjs`` next to the output) and carries:

* ``historyPath``: the Allure 3 history file (JSON lines, one line per build; default
  ``reports/allure-history.jsonl``). Allure reads it to show trends, flaky and new tests and
  appends this build to it, so keeping that one file between runs (a CI cache, a volume)
  is what carries history forward; ``historyLimit`` bounds it;
* ``categories``: the same rules as ``categories.json`` (Allure 3 reads categories from its
  config, Allure 2 from the results);
* ``environments``: with several targets in one run, one Allure environment per target
  (matched on the ``target`` label), so the report can be read target by target;
* the Awesome report grouped by epic (category) and feature (checklist item).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from postdeploy import paths
from postdeploy.reporting.allure_files import CATEGORIES, CATEGORIES_FILE, ENVIRONMENT_FILE

DEFAULT_RESULTS = Path("reports") / "allure-results"
DEFAULT_OUTPUT = Path("reports") / "allure-report"
DEFAULT_HISTORY = Path("reports") / "allure-history.jsonl"
#: Builds kept in the history file.
DEFAULT_HISTORY_LIMIT = 50
DEFAULT_NAME = "postdeploy - post-deployment validation"
CONFIG_FILE = "allurerc.mjs"
#: Where Allure 3 leaves the run's numbers in the generated report.
SUMMARY_FILE = "summary.json"
#: The counts ``postdeploy report`` prints, in this order.
SHOWN_STATS = ("passed", "failed", "broken", "skipped", "unknown", "flaky", "retries")
GENERATE_TIMEOUT_S = 300.0
#: An explicit Allure 3 executable (``node_modules/.bin/allure`` otherwise).
ALLURE_ENV = "POSTDEPLOY_ALLURE"
ALLURE_BIN = Path("node_modules") / ".bin" / "allure"
STDERR_TAIL_CHARS = 1500
INSTALL_HINT = (
    "install Node.js (20 or newer) and run `npm install` in the postdeploy checkout "
    "(./bootstrap does both)"
)


class ReportError(Exception):
    """The report cannot be built; the message says why and what to do."""


@dataclass
class BuiltReport:
    output: Path
    history: Path
    duration_s: float
    stats: dict[str, int] = field(default_factory=dict)

    def describe(self) -> str:
        counts = ", ".join(f"{self.stats[k]} {k}" for k in SHOWN_STATS if self.stats.get(k))
        return (
            f"report: {self.output / 'index.html'} ({self.stats.get('total', 0)} checks: "
            f"{counts or 'none'}) in {self.duration_s:.1f} s; history: {self.history}"
        )


def _candidates(rootdir: Path) -> list[Path]:
    package_root = paths.REPO_ROOT
    roots = [rootdir.resolve(), package_root]
    return [root / ALLURE_BIN for root in dict.fromkeys(roots)]


def find_allure(rootdir: Path) -> list[str]:
    """The command that runs Allure 3, or a ReportError with the install hint."""
    explicit = os.environ.get(ALLURE_ENV)
    if explicit:
        if not Path(explicit).is_file():
            raise ReportError(f"{ALLURE_ENV}={explicit}: no such file; unset it or fix the path")
        return [explicit]
    node = shutil.which("node")
    if node is None:
        raise ReportError(
            f"Node.js is not installed, and the Allure command line needs it: {INSTALL_HINT}"
        )
    for candidate in _candidates(rootdir):
        if candidate.exists():
            return [node, str(candidate.resolve())]
    raise ReportError(
        f"the Allure command line (npm package allure) is not installed: {INSTALL_HINT}"
    )


def _targets(results: Path) -> list[str]:
    """The targets of the run, from the ``targets`` line of environment.properties."""
    path = results / ENVIRONMENT_FILE
    if not path.exists():
        return []
    for line in path.read_text(encoding="utf-8").splitlines():
        key, _, value = line.partition("=")
        if key.strip() == "targets":
            return [t.strip() for t in value.split(",") if t.strip()]
    return []


def _categories(results: Path) -> list[dict[str, Any]]:
    path = results / CATEGORIES_FILE
    if path.exists():
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except ValueError:
            data = None
        if isinstance(data, list):
            return data
    return CATEGORIES


def config_module(
    *, name: str, output: Path, history: Path, history_limit: int, results: Path
) -> str:
    """The Allure 3 config for one build, as an ES module (environments need functions)."""
    environments = "".join(
        f"    {json.dumps(t)}: {{ matcher: ({{ labels }}) => labels.some("
        f'(l) => l.name === "target" && l.value === {json.dumps(t)}) }},\n'
        for t in _targets(results)
    )
    parts = [
        "// Written by `postdeploy report` for one build; "
        "edit postdeploy/reporting/html.py instead.",
        "export default {",
        f"  name: {json.dumps(name)},",
        f"  output: {json.dumps(str(output))},",
        f"  historyPath: {json.dumps(str(history))},",
        f"  historyLimit: {int(history_limit)},",
        f"  categories: {json.dumps(_categories(results))},",
        "  plugins: {",
        "    awesome: { options: { reportName: "
        + json.dumps(name)
        + ', singleFile: false, groupBy: ["epic", "feature"] } },',
        "  },",
    ]
    if environments.count("matcher") > 1:
        parts += ["  environments: {", environments.rstrip("\n"), "  },"]
    parts.append("};")
    return "\n".join(parts) + "\n"


def _prepare_output(output: Path) -> None:
    """Start from an empty output directory, but never wipe one that is not a report."""
    if output.exists():
        if not output.is_dir():
            raise ReportError(f"{output} is a file; give --output a directory")
        if any(output.iterdir()) and not (output / "index.html").exists():
            raise ReportError(
                f"{output} is not empty and holds no Allure report; give --output a new or "
                "report directory (it is replaced on every build)"
            )
        shutil.rmtree(output)
    output.parent.mkdir(parents=True, exist_ok=True)


def read_stats(output: Path) -> dict[str, int]:
    """The counts the generated report shows (its ``summary.json``)."""
    path = output / SUMMARY_FILE
    if not path.exists():
        return {}
    data = json.loads(path.read_text(encoding="utf-8"))
    stats = data.get("stats", {})
    return {str(k): int(v) for k, v in stats.items() if isinstance(v, int)}


def build(
    results: Path,
    output: Path,
    history: Path,
    *,
    rootdir: Path,
    name: str = DEFAULT_NAME,
    history_limit: int = DEFAULT_HISTORY_LIMIT,
    timeout_s: float = GENERATE_TIMEOUT_S,
) -> BuiltReport:
    """Build the HTML report from ``results`` into ``output``, reading and extending ``history``."""
    results, output, history = results.resolve(), output.resolve(), history.resolve()
    if not results.is_dir() or not any(results.glob("*-result.json")):
        raise ReportError(
            f"no Allure results in {results}: run a validation first "
            "(pytest --target NAME writes them to reports/allure-results)"
        )
    if history_limit < 1:
        raise ReportError("--history-limit must be at least 1")
    command = find_allure(rootdir)
    _prepare_output(output)
    history.parent.mkdir(parents=True, exist_ok=True)
    config = output.parent / f".{output.name}-{CONFIG_FILE}"
    config.write_text(
        config_module(
            name=name, output=output, history=history, history_limit=history_limit,
            results=results,
        ),
        encoding="utf-8",
    )  # fmt: skip
    started = time.monotonic()
    try:
        done = subprocess.run(
            [*command, "generate", str(results), "--config", str(config), "--output", str(output)],
            cwd=rootdir, capture_output=True, text=True, timeout=timeout_s, check=False,
            env={**os.environ, "NO_COLOR": "1", "CI": os.environ.get("CI", "true")},
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        raise ReportError(f"allure generate did not finish within {timeout_s:.0f} s") from None
    finally:
        config.unlink(missing_ok=True)
    if done.returncode != 0 or not (output / "index.html").exists():
        tail = (done.stderr or done.stdout).strip()[-STDERR_TAIL_CHARS:]
        raise ReportError(f"allure generate exited {done.returncode}: {tail or 'no output'}")
    return BuiltReport(output, history, time.monotonic() - started, read_stats(output))
