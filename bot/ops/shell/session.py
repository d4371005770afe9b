"""One shell session: the console state (cards on screen, who you are) and what each line does.

The session feeds the built app the payloads Slack would send (``bot.sandbox.payloads``)
with ``AsyncApp.async_dispatch`` and renders what the in-process Slack recorded.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import time
from typing import IO, Any

from slack_bolt.async_app import AsyncApp
from slack_bolt.request.async_request import AsyncBoltRequest

import bot.ops.shell.oncall as oncall
from bot.ops.shell.forms import Card, Reader, _escape, _number, ask_input, find_button
from bot.ops.shell.help import SHELL_HELP
from bot.ops.shell.surfaces import SURFACES
from bot.ops.shell.truth import EXTRA
from bot.runtime import Services
from bot.sandbox import payloads
from bot.sandbox.render import button_label, buttons, render_blocks
from bot.sandbox.slack import SlackEvent, SlackSandbox

# Who the shell's payloads say they come from (``bot.sandbox.payloads`` builds them).
SHELL_APP = {"api_app_id": "A0SHELL", "token": "sandbox"}


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
        self.schedules: oncall.ScheduleBook | None = None  # the sandbox's schedules, for `rotate`

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
            if all(e.get("action_id") == "undo" for _, e in buttons(message.get("blocks") or [])):
                return None  # no buttons, or a result's Undo only: `undo` presses that one
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
            self.say(SHELL_HELP.format(user="@" + (self.name_of(self.user) or self.user), rotate=oncall.HELP))
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
        elif word in EXTRA:  # storm, reconcile, remind
            await EXTRA[word](self, rest)
        elif word == "rotate":
            await oncall.rotate(self, rest)
        elif word in SURFACES:  # home, paste (bot.ops.shell.surfaces)
            await SURFACES[word](self, rest)
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

    async def press(self, arg: str) -> None:
        found = find_button(self.cards, arg)
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
                answer = await ask_input(block, read=self.read, say=self.say, slack=self.slack)
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
