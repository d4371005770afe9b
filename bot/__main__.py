"""The ``triage-bot`` command line: serve, shell, check, mappings and audit.

This is the only module that reads the environment (through ``load_settings``).
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import gc
import io
import json
import re
import sys
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import structlog

from bot.errors import ConfigError, TriageError
from bot.settings import Settings, load_settings

log = structlog.get_logger("bot")


def _parse_since(value: str) -> float:
    """``7d``, ``12h``, ``30m`` or an ISO date/time → epoch seconds."""
    match = re.fullmatch(r"(\d+)([dhm])", value.strip())
    if match:
        n, unit = int(match.group(1)), match.group(2)
        delta = {"d": timedelta(days=n), "h": timedelta(hours=n), "m": timedelta(minutes=n)}[unit]
        return (datetime.now(UTC) - delta).timestamp()
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--since takes 7d, 12h, 30m or an ISO date, not {value!r}") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="triage-bot", description="Slack chat-ops bot for security triage.")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the bot (Socket Mode if SLACK_APP_TOKEN is set, else HTTP)")
    serve.add_argument("--port", type=int, default=None, help="HTTP port (default: $PORT or 3000)")
    serve.add_argument("--host", default="0.0.0.0", help="address to listen on (default 0.0.0.0)")
    serve.add_argument(
        "--role",
        choices=["split", "all", "web", "worker"],
        default=None,
        help="split: web here + a worker child process (default, $TRIAGE_ROLE); all: one process; "
        "web: serve Slack and store jobs; worker: run and report jobs (HTTP health only with --port)",
    )
    # The web process's end of the wake-up pipe, for the worker child it starts (internal).
    serve.add_argument("--wake-fd", type=int, default=None, help=argparse.SUPPRESS)

    shell = sub.add_parser("shell", help="try every verb in a text console, without Slack")
    shell.add_argument(
        "--sandbox",
        action="store_true",
        help="use the built-in SANDBOX tenants even if platform credentials are configured",
    )
    shell.add_argument("--user", default=None, help="the Slack user id you act as (default: alice in the sandbox)")

    sub.add_parser("check", help="validate settings and call each configured platform and Slack")

    db = sub.add_parser("db", help="migrate the database, or copy an installation to another database")
    dsub = db.add_subparsers(dest="db_command", required=True)
    dsub.add_parser("upgrade", help="bring TRIAGE_DB to the newest schema (serve also does it on start)")
    dcopy = dsub.add_parser("copy", help="copy every row to another, empty database (e.g. SQLite to PostgreSQL)")
    dcopy.add_argument("--from", dest="source", default=None, help="the database to read (default: $TRIAGE_DB)")
    dcopy.add_argument("--to", dest="target", required=True, help="the empty database to fill: a path or URL")

    mappings = sub.add_parser("mappings", help="import, export or verify identity mappings")
    msub = mappings.add_subparsers(dest="mappings_command", required=True)
    imp = msub.add_parser("import", help="load mappings from a CSV or YAML file")
    imp.add_argument("file")
    imp.add_argument("--team", default=None, help="Slack team id (default: from auth.test)")
    imp.add_argument("--apply-good-rows", action="store_true", help="apply the valid rows even if some are bad")
    exp = msub.add_parser("export", help="print every mapping as CSV or YAML")
    exp.add_argument("--format", choices=["csv", "yaml"], default="csv")
    msub.add_parser("verify", help="re-check every mapping against the platforms and report drift")

    audit = sub.add_parser("audit", help="export the audit ledger")
    asub = audit.add_subparsers(dest="audit_command", required=True)
    aexp = asub.add_parser("export", help="print ledger entries as JSON lines or CSV")
    aexp.add_argument("--since", type=_parse_since, default=0.0, help="7d, 12h, 30m or an ISO date")
    aexp.add_argument("--format", choices=["jsonl", "csv"], default="jsonl")
    return parser


def _configure_logging(settings: Settings) -> None:
    from bot.logging import configure_logging, secret_values

    configure_logging(level=settings.log_level.lower(), fmt=settings.log_format, secrets=secret_values(settings))


async def _check(settings: Settings) -> int:
    from bot.ops.check import run_check

    lines, ok = await run_check(settings)
    for line in lines:
        print(line)
    return 0 if ok else 1


async def _db(settings: Settings, args: argparse.Namespace) -> int:
    from bot.ops import db_cli

    if args.db_command == "upgrade":
        lines = await db_cli.upgrade(settings.triage_db)
    else:
        lines = await db_cli.copy(args.source or settings.triage_db, args.target)
    print("\n".join(lines))
    return 0


async def _with_services(settings: Settings, args: argparse.Namespace) -> int:
    from bot.runtime import build_services

    services = await build_services(settings)
    try:
        if args.command == "audit":
            entries = await services.jobs.ledger_since(args.since)
            out = sys.stdout
            if args.format == "jsonl":
                for e in entries:
                    out.write(json.dumps(e.model_dump(), sort_keys=True) + "\n")
            else:
                fields = list(type(entries[0]).model_fields) if entries else ["id", "at", "verb", "outcome"]
                buf = io.StringIO()
                writer = csv.DictWriter(buf, fieldnames=fields)
                writer.writeheader()
                for e in entries:
                    writer.writerow(e.model_dump())
                out.write(buf.getvalue())
            return 0
        from bot.ops import mappings_io

        if args.mappings_command == "import":
            team = args.team
            if team is None:
                auth = await services.slack.auth_test()
                team = auth["team_id"]
            report = await mappings_io.import_mappings(
                services.mappings,
                args.file,
                team_id=team,
                slack=services.slack,
                apply_good_rows=args.apply_good_rows,
            )
            print("\n".join(report.lines()))
            return 0 if report.ok else 1
        if args.mappings_command == "export":
            sys.stdout.write(await mappings_io.export_mappings(services.mappings, fmt=args.format))
            return 0
        verify = await mappings_io.verify_mappings(
            services.mappings, services.clients, slack_users=services.identity.unworkable
        )
        print("\n".join(verify.lines()))
        # Drift fails the command; "unverified" (platform not configured) does not.
        return 1 if verify.drifts else 0
    finally:
        await services.close()


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``triage-bot`` console script; returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        if args.command == "shell":
            from bot.ops.shell import run_shell

            # The sandbox needs no settings at all: a fresh machine with a broken .env still gets a shell.
            shell_settings = None if args.sandbox else load_settings()
            return asyncio.run(run_shell(sandbox=args.sandbox, user=args.user, settings=shell_settings))
        settings = load_settings()
        _configure_logging(settings)
        if args.command == "serve":
            # No collections while startup builds what lives as long as the process: serve collects
            # once and freezes it when it is ready (bot.ops.serve._freeze_startup_heap), then enables.
            gc.disable()
            try:
                from bot.ops.serve import serve

                role = args.role or settings.triage_role
                return asyncio.run(serve(settings, host=args.host, port=args.port, role=role, wake_fd=args.wake_fd))
            finally:
                gc.enable()  # serve enabled it once ready; on a refused start, here
        if args.command == "check":
            return asyncio.run(_check(settings))
        if args.command == "db":
            return asyncio.run(_db(settings, args))
        return asyncio.run(_with_services(settings, args))
    except ConfigError as exc:
        print(f"triage-bot: {exc}", file=sys.stderr)
        return 2
    except TriageError as exc:
        print(f"triage-bot: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
