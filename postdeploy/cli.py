"""The ``postdeploy`` command.

postdeploy local deploy VERSION [--faults a,b]   deploy a release of the reference app
postdeploy local status | rollback | stop         inspect, roll back, stop it
postdeploy local faults                           the faults a release can carry
postdeploy local logs [-n N]                      the serving release's log lines
postdeploy drill --target T                      could T be rolled back now? (a dry run)
postdeploy report [--reports-dir DIR]             the HTML report from allure-results, with history
postdeploy history list | show RUN | invalidate RUN  the canary judge's stored runs
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from postdeploy.config import (
    DEFAULT_TARGETS_FILE,
    ConfigError,
    Target,
    find_targets_file,
    load_targets,
)
from postdeploy.local.platform import (
    DEFAULT_VERSION,
    LocalPlatform,
    LocalPlatformError,
    load_faults,
)
from postdeploy.local.shapes import SHAPES, platform_for

DEFAULT_LOCAL_TARGET = "local"
EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
#: The reader of our output went away (``postdeploy local faults | head -5``): end quietly with
#: the status a shell gives a command stopped by SIGPIPE (128 + 13), as ``yes | head`` and git
#: do, so ``set -o pipefail`` scripts can still tell that the output was cut short.
EXIT_BROKEN_PIPE = 141


def _target_name(args: argparse.Namespace, targets: dict[str, Target]) -> str:
    """``--target``, else the first local target of ``--shape``, else ``local``."""
    if args.target:
        return str(args.target)
    shape = getattr(args, "shape", None)
    if shape:
        for name, target in targets.items():
            if target.platform == "local" and target.settings.get("shape") == shape:
                return name
    return DEFAULT_LOCAL_TARGET


def _local_platform(args: argparse.Namespace) -> LocalPlatform:
    targets = load_targets(args.targets_file).targets
    args.target = _target_name(args, targets)
    target = targets.get(args.target)
    if target is None or target.platform != "local":
        local = [n for n, t in targets.items() if t.platform == "local"]
        raise ConfigError(
            f"{args.targets_file}: {args.target!r} is not a local target; "
            f"local targets: {', '.join(local) or 'none'}"
        )
    shape = getattr(args, "shape", None)
    if shape and target.settings.get("shape", "single") != shape:
        raise ConfigError(
            f"{args.targets_file}: target {args.target!r} has shape "
            f"{target.settings.get('shape', 'single')!r}, not {shape!r}; pick a target of that "
            f"shape with --target (e.g. --target local-prod for the production shape)"
        )
    return platform_for(target)


def _faults(raw: str) -> list[str]:
    return [f.strip() for f in raw.split(",") if f.strip()]


def cmd_deploy(args: argparse.Namespace) -> int:
    platform = _local_platform(args)
    if args.canary is not None:
        from postdeploy.local.production import ProductionPlatform

        if not isinstance(platform, ProductionPlatform):
            raise ConfigError("--canary needs the production shape (e.g. --target local-prod)")
        release = platform.deploy(args.version, _faults(args.faults), canary=args.canary)
    else:
        release = platform.deploy(args.version, _faults(args.faults))
    print(f"deployed release {release.id} ({release.ref}) at {platform.url}")
    return EXIT_OK


def cmd_status(args: argparse.Namespace) -> int:
    platform = _local_platform(args)
    status = platform.status()
    print(status.describe())
    history = platform.releases()
    if history:
        print("history (newest first):")
        for release in history[:10]:
            note = f" (rollback of {release.rolled_back_from})" if release.rolled_back_from else ""
            print(f"  {release.id:>3}  {release.ref:<40} {release.deployed_at}{note}")
    return EXIT_OK if status.running or status.release is None else EXIT_FAILED


def cmd_rollback(args: argparse.Namespace) -> int:
    platform = _local_platform(args)
    before = platform.status().release
    release = platform.rollback()
    print(
        f"rolled back from release {before and before.id} to {release.ref} (release {release.id})"
    )
    return EXIT_OK


def cmd_stop(args: argparse.Namespace) -> int:
    deployment = _local_platform(args).stop()
    print(f"stopped release {deployment.release_id}" if deployment else "nothing was running")
    return EXIT_OK


def cmd_faults(args: argparse.Namespace) -> int:
    catalogue = load_faults()
    width = max(map(len, catalogue), default=0)
    for name, description in sorted(catalogue.items()):
        print(f"{name:<{width}}  {description}")
    return EXIT_OK


def cmd_logs(args: argparse.Namespace) -> int:
    for line in _local_platform(args).logs(args.lines):
        print(line)
    return EXIT_OK


def cmd_watch(args: argparse.Namespace) -> int:
    from postdeploy.rollback.controller import Mode
    from postdeploy.watch import WatchSettings, env_defaults, parse_duration, watch

    try:
        defaults = env_defaults()
        settings = WatchSettings(
            duration_s=parse_duration(args.duration),
            interval_s=parse_duration(args.interval)
            if args.interval is not None
            else defaults["interval_s"],
            error_threshold=int(
                args.error_threshold
                if args.error_threshold is not None
                else defaults["error_threshold"]
            ),
            latency_threshold_ms=args.latency_threshold_ms
            if args.latency_threshold_ms is not None
            else defaults["latency_threshold_ms"],
        )
    except ValueError as exc:
        raise ConfigError(f"watch: {exc}") from None
    if settings.interval_s <= 0 or settings.error_threshold < 1:
        raise ConfigError("watch: --interval must be positive and --error-threshold at least 1")
    target = load_targets(args.targets_file).select(args.target)
    if len(target) != 1:
        raise ConfigError("watch: --target names one target")
    from postdeploy.rollback import DriverUnavailable, preflight

    try:
        preflight(target, args.rollback, command="watch ")
    except DriverUnavailable as exc:
        raise ConfigError(str(exc)) from None
    from postdeploy.settings import new_run_id

    print(
        f"watching {target[0].name} ({target[0].url}) for {settings.duration_s:.0f} s, every "
        f"{settings.interval_s:.0f} s; rollback {args.rollback} after "
        f"{settings.error_threshold} errors (at most {settings.max_requests} requests)"
    )
    result = watch(
        target[0],
        settings,
        mode=Mode(args.rollback),
        reports_dir=args.reports_dir,
        rootdir=Path.cwd(),
        targets_file=args.targets_file,
        run_id=new_run_id(),
    )
    entry = result.verdict["targets"][target[0].name]
    print(f"gate: {entry['gate']} - {entry['reason']}")
    record = result.rollback
    if record is not None:
        print(f"rollback ({record.mode}): {record.status} - {record.reason}")
    return int(result.verdict["exit_status"])


def cmd_drill(args: argparse.Namespace) -> int:
    """A rollback drill: could the target be rolled back now? Gate in dry-run, then readiness."""
    import json

    from postdeploy.rollback.controller import (
        AUDIT_FILE,
        AuditLog,
        Mode,
        RollbackController,
        Verifier,
    )
    from postdeploy.settings import new_run_id

    targets = load_targets(args.targets_file).select(args.target)
    if len(targets) != 1:
        raise ConfigError("drill: --target names one target")
    target = targets[0]
    reports = args.reports_dir
    run_id = new_run_id()
    verifier = Verifier(Path.cwd(), args.targets_file, reports, rollback="dry-run", subdir="drill")
    controller = RollbackController(Mode.DRY_RUN, AuditLog(reports / AUDIT_FILE, run_id), verifier)
    print(f"rollback drill of {target.name} ({target.url}), run {run_id}")
    gate = {"status": "skipped", "reason": "--no-gate"} if args.no_gate else verifier(target)
    print(f"  gate (--rollback dry-run, health checks): {gate.get('status')}"
          + (f" - {gate['reason']}" if gate.get("reason") else ""))  # fmt: skip
    checks = controller.readiness(target)
    for check in checks:
        print(f"  {'ok  ' if check['ok'] else 'FAIL'} {check['check']}: {check['detail']}")
    ready = all(check["ok"] for check in checks)
    verdict = "a rollback could happen now" if ready else "a rollback could NOT happen now"
    print(f"drill: {verdict}")
    reports.mkdir(parents=True, exist_ok=True)
    (reports / "drill.json").write_text(
        json.dumps(
            {"run_id": run_id, "target": target.name, "ready": ready, "gate": gate,
             "checks": checks},
            indent=2,
        ) + "\n",
        encoding="utf-8",
    )  # fmt: skip
    return EXIT_OK if ready else EXIT_FAILED


def cmd_report(args: argparse.Namespace) -> int:
    from postdeploy.reporting import html as htmlreport

    reports = args.reports_dir
    try:
        built = htmlreport.build(
            args.results or reports / "allure-results",
            args.output or reports / "allure-report",
            args.history or reports / "allure-history.jsonl",
            rootdir=Path.cwd(),
            name=args.name or htmlreport.DEFAULT_NAME,
            history_limit=htmlreport.DEFAULT_HISTORY_LIMIT
            if args.history_limit is None
            else args.history_limit,
        )
    except htmlreport.ReportError as exc:
        print(f"postdeploy: error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    print(built.describe())
    return EXIT_OK


def cmd_history(args: argparse.Namespace) -> int:
    from postdeploy.performance.history import History, HistoryError

    store = History(args.history_dir)
    try:
        if args.action == "list":
            runs = store.runs(args.target, args.profile)
            print(f"{len(runs)} stored run(s) in {store.root} (newest first)")
            for run in runs:
                print("  " + run.line())
        elif args.action == "show":
            for run in store.find(args.run):
                print(json.dumps(run.to_dict(), indent=2))
                for name, arm in run.samples().items():
                    summary = arm.summary()
                    print(
                        f"  {name:<16} n {summary['samples']:>5}  median {summary['median_ms']} ms"
                        f"  p95 {summary['p95_ms']} ms  errors {arm.errors}/{arm.requests}"
                    )
        else:
            for run in store.invalidate(args.run, args.reason):
                print(f"invalidated {run.run_id} ({run.target}, {run.profile}): {run.invalidated}")
    except HistoryError as exc:
        print(f"postdeploy: error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK


def _history_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    history = commands.add_parser(
        "history", help="The canary judge's stored runs: list, show, invalidate"
    )
    history.add_argument(
        "--history-dir", type=Path, default=None, metavar="DIR",
        help="History folder (default: history/ in the state dir)",
    )  # fmt: skip
    actions = history.add_subparsers(dest="action", required=True, metavar="ACTION")
    listing = actions.add_parser("list", help="Stored runs, newest first")
    listing.add_argument("--target", default=None, help="Only this target")
    listing.add_argument("--profile", default=None, help="Only this load profile")
    actions.add_parser("show", help="One run's header and samples").add_argument("run")
    invalidate = actions.add_parser(
        "invalidate", help="Exclude a run from future comparisons (e.g. made in an incident)"
    )
    invalidate.add_argument("run")
    invalidate.add_argument("--reason", default="invalidated by hand", help="Why (kept)")
    history.set_defaults(handler=cmd_history)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="postdeploy", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    local = commands.add_parser("local", help="Manage the local deployment of the reference app")
    local.add_argument(
        "--targets-file", type=Path, default=None,
        help=f"Targets file (default: the nearest {DEFAULT_TARGETS_FILE} from here upward)",
    )  # fmt: skip
    local.add_argument(
        "--target", default=None,
        help="Local target name (default: local, or the first target of --shape)",
    )  # fmt: skip
    actions = local.add_subparsers(dest="action", required=True, metavar="ACTION")
    deploy = actions.add_parser("deploy", help="Deploy a release (stops the running one)")
    deploy.add_argument("version", nargs="?", default=DEFAULT_VERSION, help="Release version")
    deploy.add_argument(
        "--faults", default="",
        help="Comma-separated faults the release carries; NAME@N puts one on instance N only",
    )  # fmt: skip
    deploy.add_argument(
        "--shape", choices=SHAPES, default=None,
        help="Refuse unless the target has this shape (production: --target local-prod)",
    )  # fmt: skip
    deploy.add_argument(
        "--canary", type=int, default=None, metavar="N",
        help="Production shape: roll the release out to the first N instances only",
    )  # fmt: skip
    deploy.set_defaults(handler=cmd_deploy)
    actions.add_parser("status", help="What serves, and the release history").set_defaults(
        handler=cmd_status
    )
    actions.add_parser("rollback", help="Redeploy the previous different release").set_defaults(
        handler=cmd_rollback
    )
    actions.add_parser("stop", help="Stop the running release").set_defaults(handler=cmd_stop)
    actions.add_parser("faults", help="List the faults a release can carry").set_defaults(
        handler=cmd_faults
    )
    logs = actions.add_parser("logs", help="Print the serving release's log lines")
    logs.add_argument("-n", "--lines", type=int, default=100, help="How many (default: 100)")
    logs.set_defaults(handler=cmd_logs)

    monitor = commands.add_parser(
        "watch", help="Watch a deployment and roll it back when errors cross the threshold"
    )
    monitor.add_argument("--target", required=True, help="Target to watch (one)")
    monitor.add_argument(
        "--targets-file", type=Path, default=None,
        help=f"Targets file (default: the nearest {DEFAULT_TARGETS_FILE} from here upward)",
    )  # fmt: skip
    monitor.add_argument("--duration", default="10m", help="How long to watch (default: 10m)")
    monitor.add_argument(
        "--interval", default=None,
        help="Time between rounds (default: $ROLLBACK_MONITORING_INTERVAL or 30s)",
    )  # fmt: skip
    monitor.add_argument(
        "--error-threshold", type=int, default=None,
        help="Errors that fail the gate (default: $ROLLBACK_ERROR_THRESHOLD or 5)",
    )  # fmt: skip
    monitor.add_argument(
        "--latency-threshold-ms", type=float, default=None,
        help="A slower answer counts as an error (default: $ROLLBACK_RESPONSE_TIME_THRESHOLD "
        "or 5000)",
    )  # fmt: skip
    monitor.add_argument(
        "--rollback",
        choices=("off", "dry-run", "auto"),
        default="auto",
        help="What a failed gate does (default: auto)",
    )
    monitor.add_argument(
        "--reports-dir", type=Path, default=Path("reports"), help="Where verdict.json goes"
    )
    monitor.set_defaults(handler=cmd_watch)

    drill = commands.add_parser(
        "drill", help="Rollback drill: could the target be rolled back now? (calls nothing)"
    )
    drill.add_argument("--target", required=True, help="Target to drill (one)")
    drill.add_argument(
        "--targets-file", type=Path, default=Path(DEFAULT_TARGETS_FILE), help="Targets file"
    )
    drill.add_argument(
        "--reports-dir", type=Path, default=Path("reports"), help="Where drill.json goes"
    )
    drill.add_argument(
        "--no-gate", action="store_true", help="Only the readiness checks, no dry-run gate"
    )
    drill.set_defaults(handler=cmd_drill)

    report = commands.add_parser(
        "report", help="Build the HTML report from allure-results (Allure 3), keeping history"
    )
    report.add_argument(
        "--reports-dir", type=Path, default=Path("reports"), metavar="DIR",
        help="Reports dir (default: reports)",
    )  # fmt: skip
    report.add_argument(
        "--results", type=Path, metavar="DIR", help="Allure results (default: DIR/allure-results)"
    )
    report.add_argument(
        "--output", type=Path, metavar="DIR", help="HTML report (default: DIR/allure-report)"
    )
    report.add_argument(
        "--history", type=Path, metavar="FILE",
        help="History file, read and extended (default: DIR/allure-history.jsonl)",
    )  # fmt: skip
    report.add_argument(
        "--history-limit", type=int, default=None, metavar="N",
        help="Builds kept in the history (default: 50)",
    )  # fmt: skip
    report.add_argument("--name", default=None, help="Report title")
    report.set_defaults(handler=cmd_report)
    _history_parser(commands)
    return parser


def _run(argv: list[str] | None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "targets_file", "unset") is None:
        # like the plugin: the nearest targets file from here upward, so any folder works
        args.targets_file = find_targets_file(Path.cwd()) or Path(DEFAULT_TARGETS_FILE)
    try:
        return int(args.handler(args))
    except ConfigError as exc:
        print(f"postdeploy: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except LocalPlatformError as exc:
        print(f"postdeploy: error: {exc}", file=sys.stderr)
        return EXIT_FAILED


def _drop_stdout() -> None:
    """Point stdout at /dev/null, so the interpreter's final flush has nowhere to fail."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


def main(argv: list[str] | None = None) -> int:
    """Run one command; its exit status. A closed output pipe ends it quietly (141)."""
    try:
        try:
            return _run(argv)
        finally:
            sys.stdout.flush()  # inside the try: buffered output fails here, not at exit
    except BrokenPipeError:
        _drop_stdout()
        return EXIT_BROKEN_PIPE


if __name__ == "__main__":
    sys.exit(main())
