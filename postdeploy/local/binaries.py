"""Finding the Debian packages' programs the production shape runs, with one clear error each."""

from __future__ import annotations

import glob
import os
import shutil
from dataclasses import dataclass


class MissingBinary(Exception):
    """A program is not installed; the message names the apt package that provides it."""


@dataclass(frozen=True)
class Program:
    name: str
    package: str
    #: where the Debian package puts it when it is not on PATH (globs allowed)
    fallbacks: tuple[str, ...] = ()


NGINX = Program("nginx", "nginx", ("/usr/sbin/nginx",))
PROMETHEUS = Program("prometheus", "prometheus", ("/usr/bin/prometheus",))
ALERTMANAGER = Program(
    "prometheus-alertmanager", "prometheus-alertmanager", ("/usr/bin/prometheus-alertmanager",)
)
#: PostgreSQL's server programs live in a versioned folder, not on PATH.
POSTGRES_BIN_GLOB = "/usr/lib/postgresql/*/bin"
POSTGRES_PACKAGE = "postgresql"


def find(program: Program) -> str:
    """The path of ``program``; :class:`MissingBinary` naming its package otherwise."""
    found = shutil.which(program.name)
    if found:
        return found
    for pattern in program.fallbacks:
        for path in sorted(glob.glob(pattern)):
            if os.access(path, os.X_OK):
                return path
    raise MissingBinary(_missing(program.name, program.package))


def postgres_bin_dir() -> str:
    """The newest installed PostgreSQL's bin folder (initdb, postgres)."""
    candidates = [
        d
        for d in glob.glob(POSTGRES_BIN_GLOB)
        if os.access(os.path.join(d, "initdb"), os.X_OK)
        and os.access(os.path.join(d, "postgres"), os.X_OK)
    ]
    if not candidates:
        raise MissingBinary(_missing("PostgreSQL server (initdb, postgres)", POSTGRES_PACKAGE))
    return max(candidates, key=lambda d: int(d.split("/")[-2]) if d.split("/")[-2].isdigit() else 0)


def _missing(what: str, package: str) -> str:
    return (
        f"{what} is not installed; the production shape needs it: install the Debian package "
        f"with `apt-get install -y {package}` (./bootstrap does)"
    )


def require_all() -> dict[str, str]:
    """Every program of the production shape, checked before anything starts."""
    return {
        "nginx": find(NGINX),
        "prometheus": find(PROMETHEUS),
        "alertmanager": find(ALERTMANAGER),
        "postgres": postgres_bin_dir(),
    }
