"""``triage-bot shell``: start the sandbox or the real services, then read lines until EOF or ``quit``."""

from __future__ import annotations

import asyncio
import sys
import tempfile
import threading
from collections.abc import Callable
from contextlib import AsyncExitStack
from pathlib import Path
from typing import IO

from slack_sdk.web.async_client import AsyncWebClient

from bot.ops.shell.forms import Reader
from bot.ops.shell.session import Shell
from bot.sandbox import CHANNEL, PEOPLE, SEED, TEAM, Sandbox
from bot.sandbox.slack import SlackSandbox
from bot.settings import Settings
from bot.slack_web import SlackWeb


def tour(user: str) -> str:
    """The banner's first-minute tour of the seeded sandbox."""
    f, d, s, i = SEED.findings, SEED.alerts_default, SEED.alerts_secops, SEED.incidents
    people = ", ".join(f"@{p.name}" for p in PEOPLE)
    return f"""\
=== SANDBOX — built-in fake Datadog, Kibana (spaces default + secops), Xpanse and Slack on 127.0.0.1 ===
Nothing leaves this machine; the data is seeded and forgotten on exit.
You are @{user}. People: {people} (carol's Kibana profile has no e-mail: `map` her).
Seeded: Datadog findings dd:{f[0]} dd:{f[1]} dd:{f[2]} and case {SEED.case_key};
        Kibana alerts kibana:{d[0]} kibana:{d[1]} kibana:secops/{s[0]} kibana:secops/{s[1]};
        Xpanse incidents xpanse:{i[0]} xpanse:{i[1]} xpanse:{i[2]}.
Try, in order (cards are numbered; `cards` lists them):
  show dd:{f[0]}                 → card #1, then: press "Assign to me" 1
  show kibana:secops/{s[0]}      → card #2, then: press "Assign…" 2   (answer: bob)
  show xpanse:{i[0]}                     → card #3, then: press resolve 3   (answers: 2, a comment)
  press mute 1     (answers: 2, a date like 2099-01-31, a description)    then: press unmute 1
  press refresh 1
  assign dd:{f[2]} xpanse:{i[2]} to @bob
  unassign dd:{f[2]}
  attach dd:{f[0]} to case {SEED.case_key}      then: detach dd:{f[0]}
  resolve kibana:secops/{s[1]} reason false_positive -- noisy rule    then: reopen kibana:secops/{s[1]}
  resolve dd:{f[1]} reason risk_accepted for 30d -- accepted until the Q3 fix
  reopen dd:{f[1]} reason no_longer_accepted_risk      reopen xpanse:{i[0]}
  ack kibana:{d[0]}          tag kibana:{d[0]} +triaged -noise    (or: show it, then press tags)
  comment xpanse:{i[1]} owner confirmed the host is retired
  severity xpanse:{i[1]} low
  mine @bob        whoami        history dd:{f[0]}
  handoff @bob to @alice             then: press confirm
  oncall         rotate   → shift change on {SEED.schedule}: alice's items go to bob once you press confirm
  map @carol kibana=u_carol_sandbox_0  then: unmap @carol kibana
  shortcut please look at xpanse:{i[1]}
  storm 200        → a webhook alert storm: a few cards, then digests with bulk buttons
  show dd:{f[2]}   then: remind     → as if 30m passed: a nudge in its thread (critical, unassigned)
                             then: reconcile  → Bob takes it in Datadog itself: the card is redrawn in place
  as @bob          help          quit"""


async def _in_daemon_thread(read: Callable[[], str | None]) -> str | None:
    """Run a blocking read in a daemon thread: Ctrl-C or the end of the session never waits on it."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[str | None] = loop.create_future()

    def settle(value: str | None, error: BaseException | None) -> None:
        if future.done():
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(value)

    def work() -> None:
        try:
            value, error = read(), None
        except EOFError:
            value, error = None, None
        except BaseException as exc:  # handed to the awaiting task, not lost in the thread
            value, error = None, exc
        try:
            loop.call_soon_threadsafe(settle, value, error)
        except RuntimeError:  # the loop is gone: the session already ended
            pass

    threading.Thread(target=work, name="shell-input", daemon=True).start()
    return await future


async def _line_reader(stream: IO[str], out: IO[str], *, interactive: bool) -> Reader:
    async def read(prompt: str) -> str | None:
        if interactive:
            return await _in_daemon_thread(lambda: input(prompt))
        line = await _in_daemon_thread(stream.readline)
        if not line:
            return None
        # Echo scripted input so a transcript reads like a session.
        out.write(f"{prompt}{line.rstrip()}\n")
        out.flush()
        return line.rstrip("\n")

    return read


async def open_shell(
    *,
    settings: Settings | None,
    sandbox: bool,
    user: str | None,
    out: IO[str],
    read: Reader,
    stack: AsyncExitStack,
) -> Shell:
    """Start the sandbox (or not), the services, the in-process Slack and the app; print the banner.

    Everything started is registered on ``stack`` so closing it stops it all. Raises
    ``ConfigError`` for invalid settings.
    """
    from bot.app import build_app
    from bot.core.policy import Policy
    from bot.logging import configure_logging, secret_values
    from bot.runtime import build_services
    from bot.settings import load_settings

    policy = None
    upstream = None
    if sandbox:
        tenants = await Sandbox().start()
        stack.push_async_callback(tenants.stop)
        tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="triage-sandbox-"))
        # The seeded on-call schedule is watched too (`rotate` changes it, `oncall` shows it).
        oncall = tenants.write_oncall(tmp)
        settings = load_settings(**tenants.settings_overrides(str(Path(tmp) / "triage.db"), oncall=oncall))
        slack, team, channel = tenants.slack, TEAM, CHANNEL
        # Alice is the sandbox admin so that handing off someone else's items works in the tour.
        policy = Policy.model_validate({"admins": {"users": [PEOPLE[0].slack_id]}})
        user = user or PEOPLE[0].slack_id
    else:
        assert settings is not None
        if settings.slack_bot_token is not None:
            upstream = AsyncWebClient(
                token=settings.slack_bot_token.get_secret_value(), base_url=settings.slack.api_url
            )
        slack = await SlackSandbox(token="xoxb-shell-local", team_id=TEAM, upstream=upstream).start()
        stack.push_async_callback(slack.stop)
        team, channel = TEAM, CHANNEL
        if upstream is not None:
            auth = await upstream.auth_test()
            team = str(auth.get("team_id") or TEAM)
        user = user or "U0SHELL"
    configure_logging(level="warning", fmt="console", secrets=secret_values(settings), stream=sys.stderr)
    client = SlackWeb(slack.token, slack.api_url)
    stack.push_async_callback(client.aclose)
    services = await build_services(settings, slack=client, policy=policy)
    stack.push_async_callback(services.close)
    await services.workers.start()
    await services.poster.start()
    # Socket Mode semantics: no request signatures, payloads handed over as dicts.
    app = build_app(settings, services)
    shell = Shell(
        app=app,
        services=services,
        slack=slack,
        team=team,
        channel=channel,
        user=user,
        sandbox=sandbox,
        out=out,
        read=read,
    )
    if sandbox:
        shell.schedules = tenants.datadog.book
        await services.oncall.poll_once()  # the baseline: the first `rotate` is a shift change
        shell.say(tour(shell.name_of(user) or user))
    else:
        platforms = ", ".join(p.label for p in settings.configured_platforms)
        slack_note = (
            "user look-ups go to your Slack workspace"
            if upstream is not None
            else "no SLACK_BOT_TOKEN: map identities with `map @you datadog=…`"
        )
        shell.say(
            f"=== triage shell — acting on the REAL platforms: {platforms} ===\n"
            f"Messages stay in this console; {slack_note}. You are {user} (`as U123` to change).\n"
            "Type `help` for the console, `/triage help` for the commands."
        )
    return shell


async def run_shell(
    *,
    sandbox: bool,
    user: str | None = None,
    settings: Settings | None = None,
    stdin: IO[str] | None = None,
    stdout: IO[str] | None = None,
) -> int:
    """Run a console session until EOF or ``quit``; returns the exit status.

    ``settings`` with no configured platform (or ``sandbox=True``) starts the sandbox.
    """
    stdin = stdin if stdin is not None else sys.stdin
    out = stdout if stdout is not None else sys.stdout
    interactive = stdin is sys.stdin and stdin.isatty() and out.isatty()
    if settings is None or not settings.configured_platforms:
        if not sandbox:
            out.write("No platform credentials configured: starting the built-in SANDBOX.\n")
        sandbox = True
    read = await _line_reader(stdin, out, interactive=interactive)
    async with AsyncExitStack() as stack:
        shell = await open_shell(settings=settings, sandbox=sandbox, user=user, out=out, read=read, stack=stack)
        while True:
            line = await read(f"triage(@{shell.name_of(shell.user) or shell.user})> ")
            if line is None:
                break
            if not await shell.execute(line):
                break
        shell.say("bye")
    return 0
