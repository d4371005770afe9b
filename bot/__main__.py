"""The ``triage-bot`` command line: serve, shell, check, mappings and audit.

This is the only module that reads the environment (through ``load_settings``).
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import io
import json
import re
import signal
import sys
import time
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

    shell = sub.add_parser("shell", help="try every verb in a text console, without Slack")
    shell.add_argument(
        "--sandbox",
        action="store_true",
        help="use the built-in SANDBOX tenants even if platform credentials are configured",
    )
    shell.add_argument("--user", default=None, help="the Slack user id you act as (default: alice in the sandbox)")

    sub.add_parser("check", help="validate settings and call each configured platform and Slack")

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


async def _serve(settings: Settings, *, host: str, port: int) -> int:
    from aiohttp import web

    from bot.app import build_app
    from bot.runtime import build_services
    from bot.web import build_web_app

    problems = []
    if settings.slack_bot_token is None:
        problems.append("SLACK_BOT_TOKEN is required to serve")
    if settings.slack_app_token is None and settings.slack_signing_secret is None:
        problems.append("SLACK_SIGNING_SECRET is required in HTTP mode (or set SLACK_APP_TOKEN for Socket Mode)")
    if problems:
        raise ConfigError(problems)
    started = time.monotonic()
    services = await build_services(settings)
    bolt = build_app(settings, services)
    await services.workers.start()
    await services.poster.start()  # the alert intake's per-channel posters, beside the workers
    socket_handler = None
    if settings.slack_app_token is not None:
        from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler

        socket_handler = AsyncSocketModeHandler(
            bolt, app_token=settings.slack_app_token.get_secret_value(), web_client=services.slack
        )
        await socket_handler.connect_async()  # type: ignore[no-untyped-call]

    async def socket_connected() -> bool:
        return socket_handler is not None and await socket_handler.client.is_connected()

    web_app = build_web_app(
        services,
        bolt=None if socket_handler else bolt,
        socket_connected=socket_connected if socket_handler else None,
    )
    runner = web.AppRunner(web_app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    log.info(
        "ready",
        mode="socket" if socket_handler else "http",
        port=port,
        startup_s=round(time.monotonic() - started, 3),
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("stopping", timeout_s=settings.triage_shutdown_timeout)
    # Stop taking new work first, then let running jobs finish or park.
    services.workers.accepting = False
    if socket_handler is not None:
        await socket_handler.close_async()  # type: ignore[no-untyped-call]
    await runner.cleanup()
    await services.close()
    log.info("stopped")
    return 0


async def _check(settings: Settings) -> int:
    from bot.ops.check import run_check

    lines, ok = await run_check(settings)
    for line in lines:
        print(line)
    return 0 if ok else 1


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
            port = args.port if args.port is not None else settings.port
            return asyncio.run(_serve(settings, host=args.host, port=port))
        if args.command == "check":
            return asyncio.run(_check(settings))
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
