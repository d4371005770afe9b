"""Slack text for the ``/triage`` parser: tokens that keep quotes and ``<…>`` entities whole,
mentions, and Slack-formatted text turned into plain text. Pure."""

from __future__ import annotations

import re
from dataclasses import dataclass

from bot.targets import unescape

__all__ = ["DASHES", "QUOTES", "Tok", "mentioned_user", "slack_to_plain", "tokenize"]

_USER_ID = re.compile(r"^[UW][A-Z0-9]+$")

QUOTES = {'"': '"', "“": "”", "”": "”"}
# Standalone separators before a free-text comment; Slack clients often turn "--" into a dash.
DASHES = {"--", "—", "–"}


# ---------------------------------------------------------------- Slack text


_ENTITY = re.compile(r"<([^<>]*)>")


def _entity_plain(match: re.Match[str]) -> str:
    body = match.group(1)
    value, _, label = body.partition("|")
    if value.startswith("@"):
        return f"@{label or value[1:]}"
    if value.startswith("#"):
        return f"#{label or value[1:]}"
    if value.startswith("!"):
        if label:
            return label
        return "@" + value[1:].split("^", 1)[0]
    if value.startswith("mailto:"):
        return label or value[len("mailto:") :]
    if label and label != value:
        return f"{label} ({value})"
    return value


def slack_to_plain(text: str) -> str:
    """Turn Slack-formatted text into plain text for a platform: entities become readable
    (``<@U1|ann>`` → ``@ann``, ``<url|label>`` → ``label (url)``) and escapes are undone."""
    return unescape(_ENTITY.sub(_entity_plain, text))


# ---------------------------------------------------------------- tokens


@dataclass(frozen=True)
class Tok:
    raw: str  # still Slack-escaped; for quoted tokens, the text inside the quotes
    start: int
    end: int
    quoted: bool = False

    @property
    def word(self) -> str:
        """The token as a lower-case keyword (quoted tokens are never keywords)."""
        return "" if self.quoted else self.raw.lower()

    @property
    def entity(self) -> str | None:
        """The inside of a token that is exactly one Slack ``<…>`` entity."""
        if not self.quoted and self.raw.startswith("<") and self.raw.endswith(">"):
            inner = self.raw[1:-1]
            if "<" not in inner and ">" not in inner:
                return inner
        return None


def tokenize(text: str) -> list[Tok]:
    """Split on whitespace, keeping "quoted text" and Slack ``<…>`` entities whole."""
    toks: list[Tok] = []
    i, n = 0, len(text)
    while i < n:
        if text[i].isspace():
            i += 1
            continue
        start = i
        if text[i] in QUOTES:
            close = QUOTES[text[i]]
            j = text.find(close, i + 1)
            if j == -1 and close != '"':
                j = text.find('"', i + 1)
            end = n if j == -1 else j + 1  # an unclosed quote runs to the end
            toks.append(Tok(text[i + 1 : (n if j == -1 else j)], start, end, quoted=True))
            i = end
            continue
        while i < n and not text[i].isspace():
            if text[i] == "<":
                j = text.find(">", i)
                i = n if j == -1 else j + 1  # labels inside <url|a label> may hold spaces
            else:
                i += 1
        toks.append(Tok(text[start:i], start, i))
    return toks


def mentioned_user(tok: Tok, actor_id: str) -> str | None:
    """The Slack user id a token names (a mention or ``me``), or None."""
    if tok.word == "me":
        return actor_id
    inner = tok.entity
    if inner and inner.startswith("@"):
        user_id = inner[1:].partition("|")[0]
        if _USER_ID.match(user_id):
            return user_id
    return None
