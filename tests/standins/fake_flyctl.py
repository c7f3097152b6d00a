"""A fake flyctl for tests: answers the few commands the Fly.io driver runs, from a state file.

Run as ``fake_flyctl.py ARGS...`` with ``FAKE_FLYCTL_STATE`` naming a JSON state file:
``{"app", "token_sha256", "releases": [...flyctl Release objects...], "current": N,
"fail": {"deploy": {"exit": 1, "stderr": "..."}}, "hang": ["deploy"], "deploy_status":
"complete"}``. Every call is appended to ``<state>.calls.jsonl`` with its argv and env-safe
facts (whether FLY_API_TOKEN was set and whether it was the expected one) - never the token.

Outputs follow flyctl's: ``releases --json`` prints its Release structs (Go field names),
``status --json`` prints ``{"ID", "Name", "Deployed", "Status", "Hostname", "Version", ...}``.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

HANG_S = 30


def _load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


def _record(path: Path, argv: list[str], token_ok: bool) -> None:
    facts = {
        "argv": argv,
        "token_set": bool(os.environ.get("FLY_API_TOKEN")),
        "token_ok": token_ok,
        "no_color": os.environ.get("NO_COLOR") == "1",
        "stdin_is_tty": sys.stdin.isatty() if sys.stdin else False,
    }
    with open(f"{path}.calls.jsonl", "a", encoding="utf-8") as calls:
        calls.write(json.dumps(facts) + "\n")


def _option(argv: list[str], name: str) -> str | None:
    return argv[argv.index(name) + 1] if name in argv and argv.index(name) + 1 < len(argv) else None


def main(argv: list[str]) -> int:
    path = Path(os.environ["FAKE_FLYCTL_STATE"])
    state = _load(path)
    token = os.environ.get("FLY_API_TOKEN", "")
    token_ok = hashlib.sha256(token.encode()).hexdigest() == state["token_sha256"]
    _record(path, argv, token_ok)
    command = argv[0] if argv else ""
    if command in state.get("hang", []):
        time.sleep(HANG_S)
    if failure := state.get("fail", {}).get(command):
        sys.stderr.write(failure.get("stderr", "Error: failed") + "\n")
        return int(failure.get("exit", 1))
    if not token_ok:
        sys.stderr.write("Error: You must be authenticated to view this.\n")
        return 1
    if _option(argv, "--app") != state["app"]:
        sys.stderr.write(f'Error: Could not find App "{_option(argv, "--app")}"\n')
        return 1
    releases = state["releases"]
    if command == "releases":
        print(json.dumps(sorted(releases, key=lambda r: -r["Version"]), indent=2))
    elif command == "status":
        print(json.dumps({
            "ID": state["app"], "Name": state["app"], "Deployed": True, "Status": "deployed",
            "Hostname": f"{state['app']}.fly.dev", "Version": state["current"],
            "AppURL": "", "Organization": {"Slug": "personal"}, "PlatformVersion": "machines",
            "Machines": [],
        }))  # fmt: skip
    elif command == "deploy":
        image = _option(argv, "--image")
        version = max(r["Version"] for r in releases) + 1
        releases.append({
            "ID": f"rel_{version:04d}", "Version": version, "Stable": True, "InProgress": False,
            "Reason": "", "Description": f"Deploy image {image}", "DeploymentStrategy": "ROLLING",
            "Status": state.get("deploy_status", "complete"), "ImageRef": image,
            "CreatedAt": f"2026-05-{version:02d}T12:00:00Z", "EvaluationID": "", "Metadata": None,
            "User": {"ID": "u1", "Name": "CI", "Email": "ci@example.test"},
        })  # fmt: skip
        state["current"] = version
        path.write_text(json.dumps(state), encoding="utf-8")
        print(f"==> Verifying app config\n--> Verified app config\nimage: {image}")
        print(f"Updating existing machines in '{state['app']}' with rolling strategy")
    elif command == "logs":
        now = datetime.datetime.now(datetime.UTC)
        for i in range(3):
            # flyctl's LogEntry; the first line is older than any window the driver keeps
            stamp = now - datetime.timedelta(days=1 if i == 0 else 0, seconds=3 - i)
            entry = {
                "timestamp": stamp.isoformat().replace("+00:00", "Z"), "level": "info",
                "instance": "148e21ea7d1889", "region": "ams", "message": f"line {i}",
                "meta": {"instance": "148e21ea7d1889", "region": "ams"},
            }  # fmt: skip
            print(json.dumps(entry) if "--json" in argv else f"{entry['timestamp']} {i}")
    else:
        sys.stderr.write(f'Error: unknown command "{command}" for "flyctl"\n')
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
