"""The cases schemathesis generated for an OpenAPI document, kept for the next run of it.

Generation is derandomized: the same document, settings and library versions always give
the same cases. Generating them is most of the fuzzing's CPU (about 0.8 s for the reference
app's 14 operations), so the cases are kept in the user's cache (``fuzz-cases/`` in
:func:`postdeploy.paths.user_cache_dir`) and the next run of the same document sends them
again instead of generating them again. They are sent and judged exactly as generated ones.

* **The key** is a digest of everything generation depends on: the document (in its own
  order), the settings ``fuzz.py`` generates with (the examples per operation, which
  operations get the fixed headers, which cookies are fixed, and its own source: Hypothesis
  derives its derandomized seed from the test function), the versions of schemathesis and
  Hypothesis, and this format.
* **No secret is stored.** The fixed headers (the synthetic user's credentials) are kept as
  their names only and filled in with this run's values; a file that would still hold one of
  their values is not written.
* **Plain data only.** Each value is JSON: objects with string keys, arrays, strings, numbers,
  booleans, null; a body may be bytes (kept as base64). A case holding anything else is not
  kept, and the run keeps its generated cases.
* **Never a verdict.** A file that cannot be read or used is generated again and replaced; a
  cache that cannot be written is left out. The newest ``KEEP`` files are kept.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import tempfile
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence

FORMAT = 1
#: Files kept (one per document and settings); older ones are removed.
KEEP = 16
SUFFIX = ".json"


@dataclass
class Batch:
    """The cases generated for one operation in one mode (``positive`` or negative)."""

    #: schemathesis' ``APIOperation``
    operation: Any
    positive: bool
    cases: list[Any] = field(default_factory=list)
    #: why Hypothesis stopped generating early ("" if it did not)
    skipped: str = ""

    @property
    def key(self) -> tuple[str, str]:
        return (self.operation.method.upper(), self.operation.path)


class _NotPlain(Exception):
    """A generated value that JSON cannot carry unchanged."""


def cache_key(document: Mapping[str, Any], generation: Mapping[str, Any]) -> str:
    """The digest of the document and of the ``generation`` settings (plain data, never a
    secret's value), with this format and the versions of schemathesis and Hypothesis."""
    settings = {
        **generation,
        "format": FORMAT,
        "schemathesis": metadata.version("schemathesis"),
        "hypothesis": metadata.version("hypothesis"),
    }
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode())
    digest.update(b"\0")
    digest.update(json.dumps(document).encode())  # its own order: the order of generation
    return digest.hexdigest()


def _plain(value: Any) -> Any:
    """``value`` if JSON carries it unchanged (a tuple, bytes or an object with other keys than
    strings would come back different)."""
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    if isinstance(value, list):
        return [_plain(item) for item in value]
    if isinstance(value, dict) and all(isinstance(key, str) for key in value):
        return {key: _plain(item) for key, item in value.items()}
    raise _NotPlain(type(value).__name__)


def _encode_body(body: Any) -> dict[str, Any]:
    from schemathesis.core import NotSet

    if isinstance(body, NotSet):
        return {"unset": True}
    if isinstance(body, bytes):
        return {"base64": base64.b64encode(body).decode("ascii")}
    return {"json": _plain(body)}


def _decode_body(data: Mapping[str, Any]) -> Any:
    from schemathesis.core import NOT_SET

    if data.get("unset"):
        return NOT_SET
    if "base64" in data:
        return base64.b64decode(data["base64"])
    return data["json"]


def _encode_case(case: Any, fixed: Mapping[str, str]) -> dict[str, Any]:
    headers = [
        [name, None if fixed.get(name) == value else _plain(value)]
        for name, value in case.headers.items()
    ]
    if case.multipart_content_types:
        raise _NotPlain("multipart")
    return {
        "path_parameters": _plain(case.path_parameters),
        "query": _plain(case.query),
        "cookies": _plain(case.cookies),
        "headers": headers,
        "body": _encode_body(case.body),
        "media_type": case.media_type,
    }


def _decode_case(operation: Any, data: Mapping[str, Any], fixed: Mapping[str, str]) -> Any:
    headers = {name: fixed[name] if value is None else value for name, value in data["headers"]}
    return operation.Case(
        path_parameters=data["path_parameters"],
        query=data["query"],
        cookies=data["cookies"],
        headers=headers,
        body=_decode_body(data["body"]),
        media_type=data["media_type"],
    )


@dataclass(frozen=True)
class CaseCache:
    """The cached cases of one document and its settings, in ``directory``."""

    directory: Path
    key: str
    #: the fixed headers of this run (name -> value): stored by name only
    fixed: Mapping[str, str]

    @classmethod
    def of(
        cls,
        directory: Path,
        document: Mapping[str, Any],
        generation: Mapping[str, Any],
        fixed: Mapping[str, str],
    ) -> CaseCache:
        """The cache of ``document`` generated with ``generation`` (see :func:`cache_key`);
        ``fixed``: the headers each run sets itself, kept by name only."""
        return cls(directory, cache_key(document, generation), dict(fixed))

    @property
    def path(self) -> Path:
        return self.directory / f"{self.key}{SUFFIX}"

    def load(self, operations: Iterable[Any]) -> list[Batch] | None:
        """The batches kept for these operations, or None (none kept, or not usable)."""
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            if data.get("format") != FORMAT or data.get("key") != self.key:
                return None
            by_key = {(op.method.upper(), op.path): op for op in operations}
            batches = []
            for kept in data["batches"]:
                operation = by_key[(kept["method"], kept["path"])]
                cases = [_decode_case(operation, case, self.fixed) for case in kept["cases"]]
                batches.append(Batch(operation, kept["positive"], cases, kept["skipped"]))
        except Exception:  # missing, unreadable, or from another document: generate again
            return None
        with contextlib.suppress(OSError):
            os.utime(self.path)  # recently used: kept longest
        return batches

    def store(self, batches: Sequence[Batch]) -> bool:
        """Keep ``batches`` for the next run; False when they cannot be kept (not plain
        data, a secret in them, or the cache cannot be written)."""
        try:
            text = json.dumps(
                {
                    "format": FORMAT,
                    "key": self.key,
                    "batches": [
                        {
                            "method": batch.key[0],
                            "path": batch.key[1],
                            "positive": batch.positive,
                            "skipped": batch.skipped,
                            "cases": [_encode_case(case, self.fixed) for case in batch.cases],
                        }
                        for batch in batches
                    ],
                }
            )
        except (_NotPlain, TypeError, ValueError):
            return False
        if any(part in text for value in self.fixed.values() for part in _secret_parts(value)):
            return False
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            handle, name = tempfile.mkstemp(dir=self.directory, suffix=".tmp")
        except OSError:
            return False
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as out:
                out.write(text)
            os.replace(name, self.path)
        except OSError:
            with contextlib.suppress(OSError):
                os.unlink(name)
            return False
        self._prune()
        return True

    def _prune(self) -> None:
        with contextlib.suppress(OSError):
            kept = sorted(
                self.directory.glob(f"*{SUFFIX}"), key=lambda p: p.stat().st_mtime, reverse=True
            )
            for old in kept[KEEP:]:
                old.unlink(missing_ok=True)


def _secret_parts(value: str) -> set[str]:
    """The parts of a header value that would give it away (``Bearer TOKEN`` -> TOKEN)."""
    return {part for part in value.split() if len(part) >= 8}
