"""pytest's rootdir must be the project the run is configured from; say why when it is not.

pytest settles its rootdir (and with it the ini file, ``testpaths`` and the default reports
dir) from the free arguments of the command line *before* plugins add their options. A
plugin option written with a space, ``--reports-dir /some/dir``, is then read as a path to
test: when that path exists outside the project, the rootdir moves there, no ``targets.toml``
is found, ``pyproject.toml``'s ``testpaths`` are lost and pytest collects everything under the
current folder. The ``--reports-dir=/some/dir`` form is never misread.
"""

from __future__ import annotations

import itertools
import os
import shlex
from collections.abc import Iterable, Sequence
from pathlib import Path

import pytest

from postdeploy.config import DEFAULT_TARGETS_FILE, find_targets_file

#: Files that make a folder pytest's rootdir when found from the invocation directory upward.
ROOTDIR_MARKERS = (
    "pytest.toml", ".pytest.toml", "pytest.ini", ".pytest.ini", "pyproject.toml", "tox.ini",
    "setup.cfg", "setup.py",
)  # fmt: skip


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def _rootdir_from(invocation_dir: Path) -> Path:
    """Roughly the rootdir pytest picks when no path is given: the nearest folder with a
    configuration file, from the invocation directory upward; else the invocation directory."""
    for folder in (invocation_dir, *invocation_dir.parents):
        if any((folder / name).is_file() for name in ROOTDIR_MARKERS):
            return folder
    return invocation_dir


def misread_option(
    args: Sequence[str], rootdir: Path, invocation_dir: Path
) -> tuple[str, str] | None:
    """The first ``--option VALUE`` pair (written with a space) whose value is an existing
    path that pytest's rootdir was taken from: the rootdir is that path or a folder above it."""
    for option, value in itertools.pairwise(args):
        if not option.startswith("-") or "=" in option or value.startswith("-"):
            continue
        path = invocation_dir / value  # an absolute value stays as it is
        try:
            misread = path.exists() and _inside(path.resolve(), rootdir)
        except (OSError, ValueError):  # a value that cannot be a path (-k EXPR, too long)
            continue
        if misread:
            return option, value
    return None


def _misread(option: str, value: str, rootdir: Path) -> str:
    return (
        f"pytest's rootdir is {rootdir} because it read '{option} {value}' as a path to test "
        f"(pytest settles its rootdir before it knows plugin options); write {option}={value}"
    )


def rootdir_problem(
    *,
    rootdir: Path,
    found: Path | None,
    args: Sequence[str],
    invocation_dir: Path,
    test_paths: Iterable[str] = (),
) -> str | None:
    """Why pytest's ``rootdir`` is not the run's project, with the fix; None when it is.

    ``found`` is the targets file found from ``invocation_dir`` upward, whose folder is the
    project (None when the file was named with --targets-file or none was found); ``args`` are
    the command line's arguments; ``test_paths`` the paths to test given on it.
    """
    rootdir = rootdir.resolve()
    invocation_dir = invocation_dir.resolve()
    culprit = misread_option(args, rootdir, invocation_dir)
    if found is not None:
        if found.resolve().parent == rootdir:
            return None
        if culprit is not None:
            return _misread(*culprit, rootdir)
        return (
            f"pytest's rootdir is {rootdir}, but the targets file found from the current "
            f"directory is {found}; run pytest from inside {rootdir} (with its own targets "
            "file), or name the targets file with --targets-file=PATH"
        )
    if culprit is None:
        return None
    # No project found from here: the misread option moved the rootdir, unless pytest would
    # have picked it anyway, from the current folder or from a path to test in it.
    explained = rootdir == _rootdir_from(invocation_dir) or any(
        _inside((invocation_dir / p.split("::")[0]).resolve(), rootdir) for p in test_paths
    )
    return None if explained else _misread(*culprit, rootdir)


def locate_targets_file(config: pytest.Config, given: str | None) -> Path:
    """The run's targets file: ``given`` (--targets-file), else the ``targets.toml`` found from
    the invocation directory upward, else the rootdir's. A usage error when pytest's rootdir
    is not the project that file belongs to (see :func:`rootdir_problem`)."""
    invocation_dir = Path(config.invocation_params.dir)
    rootdir = Path(config.rootpath)
    found = None if given else find_targets_file(invocation_dir)
    problem = rootdir_problem(
        rootdir=rootdir,
        found=found,
        # PYTEST_ADDOPTS come first on pytest's command line, and can be misread the same way
        args=[*shlex.split(os.environ.get("PYTEST_ADDOPTS", "")), *config.invocation_params.args],
        invocation_dir=invocation_dir,
        test_paths=config.args if config.args_source is pytest.Config.ArgsSource.ARGS else (),
    )
    if problem is not None:
        raise pytest.UsageError(problem)
    return Path(given) if given else found or rootdir / DEFAULT_TARGETS_FILE
