"""``triage-bot shell``: every verb in a text console, through the production pipeline.

The shell builds the real services and the real Bolt app and feeds it the payloads
Slack would send (slash commands, button clicks, modal submissions, the message
shortcut) with ``AsyncApp.async_dispatch``; the bot's Web API client talks to an
in-process Slack (``bot.sandbox.slack``) whose recorded messages and modals are
rendered here as text. With platform credentials in the environment it acts on the
real platforms; without any (or with ``--sandbox``) it starts the built-in SANDBOX
tenants. Lines come from a terminal (with a prompt) or from standard input (a
script), and EOF or ``quit`` ends the session cleanly.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import shlex
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from slack_bolt.async_app import AsyncApp
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_sdk.web.async_client import AsyncWebClient

from bot.runtime import Services
from bot.sandbox import CHANNEL, PEOPLE, SEED, TEAM, Sandbox, payloads
from bot.sandbox.render import button_label, buttons, render_blocks
from bot.sandbox.slack import SlackEvent, SlackSandbox
from bot.settings import Settings

Reader = Callable[[str], Awaitable[str | None]]
# Who the shell's payloads say they come from (``bot.sandbox.payloads`` builds them).
SHELL_APP = {"api_app_id": "A0SHELL", "token": "sandbox"}

SHELL_HELP = """\
Shell commands (everything else is a /triage command; the leading "/triage" is optional):
  /triage <verb> …            run a command, e.g. `assign dd:<id> to @bob`, `show xpanse:5471`
  help [verb]                 this text; `help assign` (or `/triage help`) prints the bot's own help
  cards                       list the cards on screen, numbered, with their buttons
  card <n>                    show card #n again
  press <button> [#]<n>       press a button on card #n (latest card if omitted); `click` works too.
                              Buttons by label or id: press "Assign to me" 1 · press assign-me 1 ·
                              press unassign #2 · press refresh · press resolve 3 · press confirm
                              Buttons ending in … open a form: answer each field (blank skips an
                              optional one, `cancel` closes the form).
  shortcut <message text>     run "Triage this" on a message with that text
  as @<person>                act as someone else (you start as {user})
  quit                        leave (EOF too)"""


@dataclass
class Card:
    """A message with buttons on screen: where it is and what it holds now."""

    number: int
    channel: str
    ts: str
    message: dict[str, Any]


class Shell:
    """One console session over a built app; ``execute`` runs one line."""

    def __init__(
        self,
        *,
        app: AsyncApp,
        services: Services,
        slack: SlackSandbox,
        team: str,
        channel: str,
        user: str,
        sandbox: bool,
        out: IO[str],
        read: Reader,
    ) -> None:
        self.app = app
        self.services = services
        self.slack = slack
        self.team = team
        self.channel = channel
        self.user = user
        self.sandbox = sandbox
        self.out = out
        self.read = read
        self.cards: dict[int, Card] = {}
        self._by_ts: dict[tuple[str, str], int] = {}
        self._seen = 0
        self._n = itertools.count(1)

    # ---- output -----------------------------------------------------------------------

    def say(self, text: str = "") -> None:
        self.out.write(text + "\n")
        self.out.flush()

    def name_of(self, user_id: str) -> str | None:
        user = self.slack.users.get(user_id)
        return user.name if user else None

    def _render(self, blocks: list[dict[str, Any]], text: str, indent: str = "  ") -> list[str]:
        lines = render_blocks(blocks, name_of=self.name_of, indent=indent) if blocks else []
        if not lines and text:
            lines = render_blocks(
                [{"type": "section", "text": {"type": "mrkdwn", "text": text}}], name_of=self.name_of, indent=indent
            )
        return lines

    def _card_lines(self, card: Card, heading: str) -> list[str]:
        label = " [SANDBOX]" if self.sandbox else ""
        return [
            f"┌ card #{card.number}{label} {heading}".rstrip(),
            *self._render(card.message.get("blocks") or [], card.message.get("text", ""), "│ "),
            "└",
        ]

    def _register(self, channel: str, ts: str, message: dict[str, Any]) -> Card | None:
        number = self._by_ts.get((channel, ts))
        if number is None:
            if not buttons(message.get("blocks") or []):
                return None
            number = len(self.cards) + 1
            self._by_ts[(channel, ts)] = number
        card = Card(number, channel, ts, message)
        self.cards[number] = card
        return card

    def show_event(self, event: SlackEvent) -> None:
        message = {"ts": event.ts, "text": event.text, "blocks": event.blocks, "thread_ts": event.thread_ts}
        if event.kind == "view":
            return  # modals are walked through by ``press``
        if event.kind in ("post", "update") and event.channel and event.ts:
            card = self._register(event.channel, event.ts, message)
            where = ""
            if event.thread_ts:
                parent = self._by_ts.get((event.channel, event.thread_ts))
                where = f"in the thread of card #{parent}" if parent else "in a thread"
            if card is not None:
                heading = "updated" if event.kind == "update" else where
                for line in self._card_lines(card, heading):
                    self.say(line)
                return
            if event.kind == "update":
                self.say("message updated:")
            else:
                self.say(f"↳ {where}:" if where else f"posted in #{event.channel}:")
        elif event.kind == "ephemeral":
            self.say("(only you can see this)")
        else:
            self.say("reply:")
            card = self._register(self.channel, f"reply.{next(self._n)}", message)
            if card is not None:
                for line in self._card_lines(card, "(reply)"):
                    self.say(line)
                return
        for line in self._render(event.blocks, event.text):
            self.say(line)

    def flush_events(self) -> list[SlackEvent]:
        new = self.slack.events[self._seen :]
        self._seen = len(self.slack.events)
        for event in new:
            self.show_event(event)
        return new

    # ---- plumbing -----------------------------------------------------------------------

    async def settle(self, timeout: float = 30.0) -> None:
        """Wait (bounded) until queued jobs ran and background replies were sent."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        background = self.app.__dict__["triage_state"]["background"]
        stable = 0
        while loop.time() < deadline and stable < 2:
            before = len(self.slack.events)
            await self.services.workers.drain(max(0.1, deadline - loop.time()))
            if background.tasks:
                await asyncio.wait(set(background.tasks), timeout=max(0.1, deadline - loop.time()))
            await asyncio.sleep(0.03)
            busy = background.tasks or not self.services.actions.queue.empty()
            stable = stable + 1 if (not busy and len(self.slack.events) == before) else 0

    async def dispatch(self, body: dict[str, Any]) -> dict[str, Any]:
        """Hand one Slack payload to the Bolt app as Socket Mode does; returns the ack's body."""
        response = await self.app.async_dispatch(AsyncBoltRequest(body=body, mode="socket_mode"))
        raw = response.body or ""
        try:
            answer = json.loads(raw) if raw else {}
        except ValueError:
            answer = {"text": raw}
        if response.status >= 400 and not answer:
            answer = {"text": f"(the app answered HTTP {response.status})"}
        return answer if isinstance(answer, dict) else {"text": str(answer)}

    def _trigger(self) -> str:
        return f"{next(self._n)}.{time.time_ns()}.sandbox"

    def slack_text(self, text: str) -> str:
        """The command text as Slack sends it: entities escaped, ``@name`` turned into a mention."""
        entity = re.compile(r"<[@#!][^<>\s]+(?:\|[^<>]*)?>|<(?:https?|mailto):[^<>\s]+>")
        parts, last = [], 0
        for m in entity.finditer(text):
            parts.append(_escape(text[last : m.start()]))
            parts.append(m.group(0))
            last = m.end()
        parts.append(_escape(text[last:]))

        def mention(m: re.Match[str]) -> str:
            user = self.slack.user_named(m.group(1))
            if user is not None:
                return f"<@{user.id}|{user.name}>"
            if re.fullmatch(r"[UW][A-Z0-9]{2,}", m.group(1)):
                return f"<@{m.group(1)}>"
            return m.group(0)

        return re.sub(r"(?<![<\w])@([\w.@-]+)", mention, "".join(parts))

    # ---- verbs ------------------------------------------------------------------------

    async def execute(self, line: str) -> bool:
        """Run one console line; False when the session should end."""
        text = line.strip()
        if not text or text.startswith("#"):
            return True
        head, _, rest = text.partition(" ")
        word = head.lower()
        if word in ("quit", "exit", "bye", ":q"):
            return False
        if word in ("help", "?") and not rest.strip():
            self.say(SHELL_HELP.format(user="@" + (self.name_of(self.user) or self.user)))
            return True
        if word in ("help", "?"):
            await self.command("help " + rest)
        elif word == "cards":
            self.list_cards()
        elif word == "card":
            self.show_card(rest)
        elif word in ("press", "click"):
            await self.press(rest)
        elif word == "shortcut":
            await self.shortcut(rest)
        elif word == "as":
            self.switch_user(rest)
        elif word.startswith("/") and word != "/triage":
            self.say(f"Only /triage exists here, not {head}. Type `help`.")
        else:
            await self.command(rest if word == "/triage" else text)
        return True

    async def command(self, text: str) -> None:
        body = payloads.slash_command(
            text=self.slack_text(text),
            user_id=self.user,
            user_name=self.name_of(self.user) or self.user,
            team_id=self.team,
            team_domain="sandbox",
            channel_id=self.channel,
            channel_name="triage",
            response_url=self.slack.webhook_url(f"cmd{next(self._n)}"),
            trigger_id=self._trigger(),
            **SHELL_APP,
        )
        answer = await self.dispatch(body)
        for line in self._render(answer.get("blocks") or [], str(answer.get("text") or "")):
            self.say(line)
        await self.settle()
        self.flush_events()

    def list_cards(self) -> None:
        if not self.cards:
            self.say("No cards yet: try `show dd:…` (the banner lists ids).")
        for card in self.cards.values():
            blocks: list[dict[str, Any]] = card.message.get("blocks") or []
            header = next((b for b in blocks if b.get("type") in ("header", "section")), {})
            title = render_blocks([header], name_of=self.name_of)[:1] or [card.message.get("text", "")]
            labels = " ".join(
                f"[{button_label(e)}]" for _, e in buttons(card.message.get("blocks") or []) if not e.get("url")
            )
            self.say(f"#{card.number} {title[0]}\n    {labels}")

    def show_card(self, arg: str) -> None:
        card = self.cards.get(_number(arg) or -1)
        if card is None:
            self.say(f"No card {arg.strip()!r}; `cards` lists them.")
            return
        for line in self._card_lines(card, ""):
            self.say(line)

    def switch_user(self, arg: str) -> None:
        who = arg.strip()
        user = self.slack.user_named(who)
        if user is not None:
            self.user = user.id
        elif re.fullmatch(r"@?[UW][A-Z0-9]{2,}", who):
            self.user = who.lstrip("@")
        else:
            known = ", ".join("@" + u.name for u in self.slack.users.values()) or "a Slack user id (as U123ABC)"
            self.say(f"Who is {who!r}? Try one of: {known}.")
            return
        self.say(f"You are now @{self.name_of(self.user) or self.user}.")

    def _find_button(self, arg: str) -> tuple[Card, dict[str, Any], dict[str, Any]] | str:
        try:
            words = shlex.split(arg)
        except ValueError as exc:
            return f"Cannot read that: {exc}."
        number = None
        if words and _number(words[-1]) is not None:
            number = _number(words.pop())
        if words and words[-1].lower() in ("on", "card"):
            words.pop()
        if words and words[-1].lower() == "on":
            words.pop()
        wanted = _norm(" ".join(words))
        if not wanted:
            return 'Press which button? e.g. `press "Assign to me" 1` (`cards` lists them).'
        candidates = [self.cards[number]] if number in self.cards else [] if number else list(self.cards.values())[::-1]
        if number and not candidates:
            return f"There is no card #{number}; `cards` lists them."
        for card in candidates:
            pairs = buttons(card.message.get("blocks") or [])
            # Exact label or id first, then a prefix ("assign" → "Assign…"), then any word of it
            # ("confirm" → the handoff_confirm button labelled "Hand off 5 items").
            for match in (str.__eq__, str.startswith, lambda n, w: f" {w} " in f" {n} "):
                for block, element in pairs:
                    names = (_norm(button_label(element)), _norm(str(element.get("action_id", ""))))
                    if any(match(n, wanted) for n in names):
                        return card, block, element
        where = f"card #{number}" if number else "any card"
        return f"No button {wanted!r} on {where}; `cards` lists the buttons."

    async def press(self, arg: str) -> None:
        found = self._find_button(arg)
        if isinstance(found, str):
            self.say(found)
            return
        card, block, element = found
        if element.get("url"):
            self.say(f"That button opens {element['url']} in a browser.")
            return
        before_views = len(self.slack.views)
        body = payloads.block_actions(
            action=payloads.button(
                str(element.get("action_id")),
                str(element.get("value", "")),
                block_id=str(block.get("block_id", "b")),
                text=element.get("text"),
            ),
            user_id=self.user,
            user_name=self.name_of(self.user) or self.user,
            team_id=self.team,
            team_domain="sandbox",
            channel_id=card.channel,
            channel_name="triage",
            message={**card.message, "ts": card.ts},
            trigger_id=self._trigger(),
            response_url=self.slack.webhook_url(f"btn{next(self._n)}"),
            **SHELL_APP,
        )
        self.say(f"(pressed [{button_label(element)}] on card #{card.number})")
        await self.dispatch(body)
        await self.settle()
        new = self.flush_events()
        views = [e.view for e in new if e.kind == "view" and e.view]
        if views and len(self.slack.views) > before_views:
            await self.fill_modal(views[-1])

    async def fill_modal(self, view: dict[str, Any]) -> None:
        """Walk a modal's inputs on the console, submit it, and show what happened."""
        title = str((view.get("title") or {}).get("text") or "Form")
        submit = str((view.get("submit") or {}).get("text") or "Submit")
        self.say(f"┌ form: {title}")
        for line in render_blocks(
            [b for b in view.get("blocks") or [] if b.get("type") != "input"], name_of=self.name_of, indent="│ "
        ):
            self.say(line)
        inputs = [b for b in view.get("blocks") or [] if b.get("type") == "input"]
        values: dict[str, dict[str, Any]] = {}
        errors: dict[str, str] = {}
        for attempt in range(3):
            for block in inputs:
                if attempt and str(block.get("block_id")) not in errors:
                    continue
                if errors.get(str(block.get("block_id"))):
                    self.say(f"│ ⚠ {errors[str(block.get('block_id'))]}")
                answer = await self._ask_input(block)
                if answer is None:
                    self.say("└ form closed; nothing was sent.")
                    return
                values[str(block.get("block_id"))] = answer
            self.say(f"└ [{submit}]")
            body = payloads.view_submission(
                view=view,
                values=values,
                user_id=self.user,
                user_name=self.name_of(self.user) or self.user,
                team_id=self.team,
                team_domain="sandbox",
                trigger_id=self._trigger(),
                view_hash=f"{view.get('hash')}.{next(self._n)}",
                **SHELL_APP,
            )
            answer = await self.dispatch(body)
            if answer.get("response_action") == "errors":
                errors = {str(k): str(v) for k, v in (answer.get("errors") or {}).items()}
                self.say("┌ the form has problems:")
                continue
            await self.settle()
            self.flush_events()
            return
        self.say("Giving up on this form after three tries; nothing was sent.")

    async def _ask_input(self, block: dict[str, Any]) -> dict[str, Any] | None:
        element = block.get("element") or {}
        kind = element.get("type")
        label = str((block.get("label") or {}).get("text") or "value")
        optional = bool(block.get("optional"))
        action_id = str(element.get("action_id"))
        options = element.get("options") or []
        initial = element.get("initial_option")
        hint = {"users_select": " (@name)", "plain_text_input": ""}.get(kind or "", "")
        if kind == "static_select":
            for n, option in enumerate(options, 1):
                self.say(f"│   {n}. {option['text']['text']} ({option['value']})")
            default = f", blank for {initial['text']['text']}" if initial else ""
            hint = f" (number or value{default})"
        elif optional:
            hint += " (optional, blank to skip)"
        while True:
            raw = await self.read(f"│ {label}{hint}: ")
            if raw is None or raw.strip().lower() == "cancel":
                return None
            value = raw.strip()
            if kind == "users_select":
                user = self.slack.user_named(value) if value else None
                if user is None and re.fullmatch(r"@?[UW][A-Z0-9]{2,}", value):
                    return {action_id: {"type": kind, "selected_user": value.lstrip("@")}}
                if user is not None:
                    return {action_id: {"type": kind, "selected_user": user.id}}
                if not value and optional:
                    return {action_id: {"type": kind, "selected_user": None}}
                self.say(f"│ ⚠ pick a person: {', '.join('@' + u.name for u in self.slack.users.values())}")
            elif kind == "static_select":
                if not value:
                    if initial or optional:
                        return {action_id: {"type": kind, "selected_option": initial}}
                    self.say("│ ⚠ this one is required")
                    continue
                chosen = next(
                    (
                        o
                        for n, o in enumerate(options, 1)
                        if value in (str(n), o["value"]) or _norm(value) == _norm(o["text"]["text"])
                    ),
                    None,
                )
                if chosen is not None:
                    return {action_id: {"type": kind, "selected_option": chosen}}
                self.say("│ ⚠ pick one of the numbers above")
            else:
                if value or optional:
                    return {action_id: {"type": kind or "plain_text_input", "value": value or None}}
                self.say("│ ⚠ this one is required")

    async def shortcut(self, text: str) -> None:
        if not text.strip():
            self.say("Give the message text, e.g. `shortcut Please look at xpanse:5471`.")
            return
        ts = f"{int(time.time())}.{next(self._n):06d}"
        message = {"type": "message", "user": self.user, "text": self.slack_text(text.strip()), "ts": ts}
        body = payloads.message_action(
            callback_id="triage_message",
            message=message,
            user_id=self.user,
            user_name=self.name_of(self.user) or self.user,
            team_id=self.team,
            team_domain="sandbox",
            channel_id=self.channel,
            channel_name="triage",
            trigger_id=self._trigger(),
            response_url=self.slack.webhook_url(f"sc{next(self._n)}"),
            token=SHELL_APP["token"],
        )
        await self.dispatch(body)
        await self.settle()
        self.flush_events()


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _norm(text: str) -> str:
    return re.sub(r"[\s_-]+", " ", text.replace("…", "").replace("...", "")).strip().lower()


def _number(token: str) -> int | None:
    value = token.strip().lstrip("#")
    return int(value) if value.isdigit() else None


# ---- the session ------------------------------------------------------------------------------


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
  press refresh 1
  assign dd:{f[2]} xpanse:{i[2]} to @bob
  unassign dd:{f[2]}
  attach dd:{f[0]} to case {SEED.case_key}
  resolve kibana:secops/{s[1]} reason false_positive -- noisy rule
  comment xpanse:{i[1]} owner confirmed the host is retired
  severity xpanse:{i[1]} low
  mine @bob        whoami        history dd:{f[0]}
  handoff @bob to @alice             then: press confirm
  map @carol kibana=u_carol_sandbox_0  then: unmap @carol kibana
  shortcut please look at xpanse:{i[1]}
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
        settings = load_settings(**tenants.settings_overrides(str(Path(tmp) / "triage.db")))
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
    client = AsyncWebClient(token=slack.token, base_url=slack.api_url)
    services = await build_services(settings, slack=client, policy=policy)
    stack.push_async_callback(services.close)
    await services.workers.start()
    # Socket Mode semantics: no request signatures, payloads handed over as dicts.
    app = build_app(settings, services, socket_mode=True)
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
