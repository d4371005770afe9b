"""The ``/triage`` grammar, its parser, its generated help, and target extraction.

Everything here is pure: text in, typed values out, ``UsageError`` on bad input.

The grammar is declared once, as data (``GRAMMAR``); the parser's usage lines and
``help_text`` are both generated from it, so help cannot drift from what parses.

Targets
-------
* ``dd:<id>`` / ``datadog:<id>`` — a Datadog security finding id. Finding ids are
  base64-like: letters, digits and ``+ / = ~ - _`` are all part of the id (a ``/``
  in a Datadog id is never a separator).
* ``kibana:<id>`` / ``kibana:<space>/<id>`` — an Elastic Security alert ``_id``,
  optionally in a Kibana space. ``Target.space`` holds the explicit space, or
  ``None`` for "the deployment's default space"; an explicit space equal to
  ``default_space`` is stored as ``None`` so one alert has one canonical key. Kibana
  ids never contain ``/``, so ``space/id`` is unambiguous.
* ``xpanse:<id>`` — a Cortex Xpanse incident id (digits).
* Prefixes are case-insensitive; several targets may be separated by spaces or
  commas, and platforms may be mixed.

Links accepted as targets (Slack's ``<url>`` / ``<url|label>`` wrapping is removed
and ``&amp;`` unescaped first):

* Datadog: any ``https://`` host that is a site from the contract's list
  (``datadoghq.com``, ``us3.datadoghq.com``, ``datadoghq.eu``, ``ddog-gov.com`` …) or
  a subdomain of one (``app.datadoghq.com``, ``myorg.datadoghq.com``), with the
  finding id in the query (``finding_id=``, ``findingId=`` or ``finding=``) or as
  the path segment after ``/findings/`` under ``/security/``. Query values are
  percent-decoded without turning ``+`` into a space, since ``+`` is part of ids.
* Kibana: any host, optional base path, optional ``/s/<space>``, then
  ``/app/security/alerts/redirect/<id>`` or ``/app/security/alerts?…`` with the id
  in ``alertId=``/``alert_id=``/``id=`` or in the rison ``flyout=`` state
  (``params:(id:'<id>'…``). No ``/s/`` means Kibana's space named ``default``.
* Xpanse: any non-Datadog host with ``/incident-view?caseId=<id>`` (also
  ``incidentId=``), ``/incident-view/<id>`` or ``/incidents/<id>``, the id numeric.

Users are Slack mentions (``<@U123>`` or ``<@U123|name>``) or ``me`` (the actor).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from difflib import get_close_matches
from typing import Any
from urllib.parse import unquote, urlsplit

from pydantic import BaseModel, ConfigDict, Field

from bot.errors import UsageError
from bot.models import Platform, Target, Verb
from bot.platforms.kibana import CLOSE_REASONS, KibanaClient
from bot.platforms.xpanse import RESOLVE_REASONS as XPANSE_RESOLVE_REASONS
from bot.platforms.xpanse import RESOLVED, SEVERITIES, XpanseClient
from bot.settings import DATADOG_SITES

__all__ = [
    "GRAMMAR",
    "RESOLVE_REASONS",
    "SEVERITIES",
    "Command",
    "VerbSpec",
    "extract_targets",
    "help_text",
    "parse_command",
    "parse_target",
    "slack_to_plain",
    "target_from_link",
    "unescape",
    "usage",
]


@dataclass(frozen=True)
class VerbSpec:
    """One verb of the grammar: its syntax line, a one-sentence summary and examples."""

    verb: Verb
    syntax: str
    summary: str
    examples: tuple[str, ...] = ()

    @property
    def usage(self) -> str:
        """The full usage line, as typed in Slack."""
        return f"/triage {self.syntax}"


GRAMMAR: tuple[VerbSpec, ...] = (
    VerbSpec(
        Verb.ASSIGN,
        "assign <targets…> [to] <@user | me>",
        "Assign one or more items to a person (replaces the current assignee).",
        ("assign dd:ZGVmLTAwcC1pZXJ-aS0wZjhjNjMyZDNmMzRlZTgzNw== xpanse:5471 to @alice", "assign kibana:soc/8a3f2c me"),
    ),
    VerbSpec(
        Verb.UNASSIGN,
        "unassign <targets…>",
        "Remove the assignee from one or more items.",
        ("unassign xpanse:5471 kibana:8a3f2c",),
    ),
    VerbSpec(
        Verb.ATTACH,
        "attach <datadog targets…> [to] case <case-uuid | KEY-123>",
        "Attach Datadog findings to a Datadog case (findings move from any other case).",
        ("attach dd:ZGVmLTAwcC1pZXJ-aS0w to case SEC-123",),
    ),
    VerbSpec(
        Verb.RESOLVE,
        "resolve <targets…> [reason <reason>] [-- comment]",
        "Close Kibana alerts or resolve Xpanse incidents, with an optional reason and comment.",
        (
            "resolve kibana:8a3f2c reason false_positive -- scanner noise",
            "resolve xpanse:5471 reason resolved_-_no_risk",
        ),
    ),
    VerbSpec(
        Verb.COMMENT,
        "comment <xpanse target> <text>",
        "Add a comment to an Xpanse incident.",
        ('comment xpanse:5471 "owner contacted, fix due Friday"',),
    ),
    VerbSpec(
        Verb.SEVERITY,
        "severity <xpanse target> <low|medium|high>",
        "Set the manual severity of an Xpanse incident.",
        ("severity xpanse:5471 high",),
    ),
    VerbSpec(
        Verb.SHOW,
        "show <target>",
        "Post the current state of an item as a card with action buttons.",
        ("show dd:ZGVmLTAwcC1pZXJ-aS0w",),
    ),
    VerbSpec(
        Verb.HANDOFF,
        "handoff [@from] to <@to>",
        "Move every open item of a person (you by default) to someone else, after a preview.",
        ("handoff to @bob", "handoff @alice to @bob"),
    ),
    VerbSpec(
        Verb.HISTORY,
        "history <target>",
        "Show what the bot has done to an item, and who asked.",
        ("history xpanse:5471",),
    ),
    VerbSpec(
        Verb.MINE,
        "mine [@user]",
        "List the open items assigned to you (or to someone else) on every platform.",
        ("mine", "mine @alice"),
    ),
    VerbSpec(
        Verb.MAP,
        "map <@user> [datadog=<uuid>] [kibana=<uid>] [xpanse=<email>]",
        "Link a Slack user to their platform identities (looked up by email when omitted).",
        (
            "map @alice xpanse=alice@example.com",
            "map @alice datadog=f315bdaf-9ee7-4808-a9c1-99c15bf0f4d0 kibana=u_alice_0",
        ),
    ),
    VerbSpec(
        Verb.UNMAP,
        "unmap <@user> <datadog|kibana|xpanse>",
        "Remove a Slack user's identity on one platform.",
        ("unmap @alice kibana",),
    ),
    VerbSpec(
        Verb.WHOAMI,
        "whoami [@user]",
        "Show the platform identities the bot uses for you (or for someone else).",
        ("whoami", "whoami @alice"),
    ),
    VerbSpec(
        Verb.HELP,
        "help [verb]",
        "Show this help, or the help of one command.",
        ("help", "help resolve"),
    ),
)

SPECS: dict[Verb, VerbSpec] = {spec.verb: spec for spec in GRAMMAR}
_BY_WORD: dict[str, VerbSpec] = {spec.verb.value: spec for spec in GRAMMAR}

TARGETS_HELP = (
    "*Targets:* `dd:<finding id>` (or `datadog:`), `kibana:<alert id>` or "
    "`kibana:<space>/<alert id>`, `xpanse:<incident id>`, or a link to the item in "
    "Datadog, Kibana or Xpanse. Separate several with spaces or commas; platforms can be mixed."
)

# The reasons each platform's client accepts for resolving, and Xpanse's manual severities:
# one home, in the clients, so the parser can never accept what the platform refuses.
# Datadog has no resolve API.
RESOLVE_REASONS: dict[Platform, tuple[str, ...]] = {
    Platform.KIBANA: CLOSE_REASONS,
    Platform.XPANSE: (RESOLVED, *XPANSE_RESOLVE_REASONS),
}
_REASON_CHECKS: dict[Platform, Callable[[str], object]] = {
    Platform.KIBANA: KibanaClient.normalise_reason,
    Platform.XPANSE: XpanseClient.resolve_status,
}


_PLATFORM_WORDS: dict[str, Platform] = {
    "dd": Platform.DATADOG,
    "datadog": Platform.DATADOG,
    "kibana": Platform.KIBANA,
    "xpanse": Platform.XPANSE,
}

# The same id rules as the platform clients' validate_id, so bad ids fail here,
# before any network call.
_DD_ID = re.compile(r"^[A-Za-z0-9+/=_~-]{1,512}$")
_KIBANA_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,512}$")
_KIBANA_SPACE = re.compile(r"^[a-z0-9_-]{1,255}$")
_XPANSE_ID = re.compile(r"^[0-9]{1,20}$")
_USER_ID = re.compile(r"^[UW][A-Z0-9]+$")
_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_CASE_KEY = re.compile(r"^[A-Za-z][A-Za-z0-9_]*-[0-9]+$")
_KIBANA_UID = re.compile(r"^[A-Za-z0-9_-]{1,256}$")
_EMAIL = re.compile(r"^[^@\s<>|]+@[^@\s<>|]+\.[^@\s<>|]+$")

_QUOTES = {'"': '"', "“": "”", "”": "”"}
# Standalone separators before a free-text comment; Slack clients often turn "--" into a dash.
_DASHES = {"--", "—", "–"}


class Command(BaseModel):
    """A parsed ``/triage`` command.

    ``user`` is a Slack user id (``me`` becomes the actor); for ``mine`` and
    ``whoami`` it defaults to the actor, and ``from_user`` of ``handoff`` too.
    ``identities`` holds ``map``'s explicit platform ids, ``platform`` is
    ``unmap``'s platform, ``help_verb`` the verb ``help`` was asked about.
    """

    model_config = ConfigDict(frozen=True)

    verb: Verb
    targets: tuple[Target, ...] = ()
    user: str | None = None
    from_user: str | None = None
    case: str | None = None
    reason: str | None = None
    comment: str | None = None
    text: str | None = None
    severity: str | None = None
    identities: dict[Platform, str] = Field(default_factory=dict)
    platform: Platform | None = None
    help_verb: Verb | None = None


# ---------------------------------------------------------------- help


def usage(verb: Verb) -> str:
    """The usage line of ``verb``; raises ``ValueError`` for a verb outside the grammar
    (``refresh`` is a button, not a command)."""
    spec = SPECS.get(verb)
    if spec is None:
        raise ValueError(f"{verb} is not a /triage command")
    return spec.usage


def help_text(verb: Verb | None = None) -> str:
    """Slack mrkdwn help for one verb, or for the whole grammar when ``verb`` is None.

    A verb outside the grammar (``refresh`` is a button, not a command) gets the
    whole grammar rather than an error.
    """
    spec = SPECS.get(verb) if verb is not None else None
    if spec is None:
        lines = ["*`/triage` commands*"]
        lines += [f"• `{s.usage}` — {s.summary}" for s in GRAMMAR]
        lines += ["", TARGETS_HELP, "Type `/triage help <verb>` for examples."]
        return "\n".join(lines)
    lines = [f"`{spec.usage}`", spec.summary]
    if spec.verb is Verb.RESOLVE:
        for platform, reasons in RESOLVE_REASONS.items():
            lines.append(f"{platform.label} reasons: " + ", ".join(f"`{r}`" for r in reasons))
    if spec.examples:
        lines.append("*Examples:*")
        lines += [f"• `/triage {example}`" for example in spec.examples]
    if spec.verb not in (Verb.MINE, Verb.MAP, Verb.UNMAP, Verb.WHOAMI, Verb.HELP, Verb.HANDOFF):
        lines.append(TARGETS_HELP)
    return "\n".join(lines)


# ---------------------------------------------------------------- Slack text


def unescape(text: str) -> str:
    """Undo Slack's three text escapes (``&lt;`` ``&gt;`` ``&amp;``); never fails."""
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


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
class _Tok:
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


def _tokenize(text: str) -> list[_Tok]:
    """Split on whitespace, keeping "quoted text" and Slack ``<…>`` entities whole."""
    toks: list[_Tok] = []
    i, n = 0, len(text)
    while i < n:
        if text[i].isspace():
            i += 1
            continue
        start = i
        if text[i] in _QUOTES:
            close = _QUOTES[text[i]]
            j = text.find(close, i + 1)
            if j == -1 and close != '"':
                j = text.find('"', i + 1)
            end = n if j == -1 else j + 1  # an unclosed quote runs to the end
            toks.append(_Tok(text[i + 1 : (n if j == -1 else j)], start, end, quoted=True))
            i = end
            continue
        while i < n and not text[i].isspace():
            if text[i] == "<":
                j = text.find(">", i)
                i = n if j == -1 else j + 1  # labels inside <url|a label> may hold spaces
            else:
                i += 1
        toks.append(_Tok(text[start:i], start, i))
    return toks


def _user(tok: _Tok, actor_id: str) -> str | None:
    """The Slack user id a token names (a mention or ``me``), or None."""
    if tok.word == "me":
        return actor_id
    inner = tok.entity
    if inner and inner.startswith("@"):
        user_id = inner[1:].partition("|")[0]
        if _USER_ID.match(user_id):
            return user_id
    return None


# ---------------------------------------------------------------- targets


class _TargetProblem(ValueError):
    """Why one piece of text is not a target (wrapped into a UsageError by callers)."""


def _normal_space(space: str | None, default_space: str | None) -> str | None:
    if space is None or space == default_space:
        return None
    return space


def _make_target(
    platform: Platform, raw_id: str, *, space: str | None, default_space: str | None, source: str
) -> Target:
    if platform is Platform.DATADOG:
        if not _DD_ID.match(raw_id):
            raise _TargetProblem(f"`{source}` is not a Datadog finding id (letters, digits and + / = ~ - _ only)")
        return Target(platform=platform, id=raw_id)
    if platform is Platform.KIBANA:
        if space is not None and not _KIBANA_SPACE.match(space):
            raise _TargetProblem(
                f"`{source}`: `{space}` is not a Kibana space id (lower-case letters, digits, _ and -)"
            )
        if not _KIBANA_ID.match(raw_id):
            raise _TargetProblem(f"`{source}` is not a Kibana alert id (letters, digits, _ . : - only)")
        return Target(platform=platform, id=raw_id, space=_normal_space(space, default_space))
    if not _XPANSE_ID.match(raw_id):
        raise _TargetProblem(f"`{source}`: Xpanse incident ids are numbers, like `xpanse:5471`")
    return Target(platform=platform, id=raw_id)


def _target_from_word(word: str, *, default_space: str | None) -> Target:
    """A ``prefix:id`` word as a target, or ``_TargetProblem`` saying what is wrong."""
    prefix, colon, rest = word.partition(":")
    if not colon:
        raise _TargetProblem(
            f"`{word}` is not a target: write `dd:<id>`, `kibana:<id>` or `xpanse:<id>`, or paste the item's link"
        )
    platform = _PLATFORM_WORDS.get(prefix.lower())
    if platform is None:
        raise _TargetProblem(f"`{prefix}:` is not a platform prefix: use `dd:`, `datadog:`, `kibana:` or `xpanse:`")
    if not rest:
        raise _TargetProblem(f"`{word}` has no id after `{prefix}:`")
    space: str | None = None
    if platform is Platform.KIBANA and "/" in rest:
        space, _, rest = rest.partition("/")
        if not space or not rest:
            raise _TargetProblem(f"`{word}`: write `kibana:<space>/<alert id>`")
    return _make_target(platform, rest, space=space, default_space=default_space, source=word)


def parse_target(text: str, *, default_space: str | None = "default") -> Target:
    """One target from ``dd:``/``kibana:``/``xpanse:`` text or a platform link (Slack-wrapped
    or not); raises ``UsageError`` saying what is wrong.

    With ``default_space=None`` a Kibana space is kept exactly as written, which
    makes ``parse_target(t.key, default_space=None) == t`` for every target.
    """
    try:
        return _target_from_text(text.strip(), default_space=default_space)
    except _TargetProblem as exc:
        raise UsageError(str(exc)) from None


def _target_from_text(text: str, *, default_space: str | None) -> Target:
    if text.startswith("<") and text.endswith(">"):
        text = text[1:-1].partition("|")[0]
    text = unescape(text)
    if text.lower().startswith(("http://", "https://")):
        target = target_from_link(text, default_space=default_space)
        if target is None:
            raise _TargetProblem(
                f"can't find a Datadog finding, Kibana alert or Xpanse incident id in the link {text} "
                "— use `dd:<id>`, `kibana:<id>` or `xpanse:<id>` instead"
            )
        return target
    return _target_from_word(text, default_space=default_space)


def _query(query: str) -> dict[str, str]:
    """Query parameters, first value wins; ``+`` stays ``+`` because ids contain it."""
    params: dict[str, str] = {}
    for pair in query.split("&"):
        key, _, value = pair.partition("=")
        if key:
            params.setdefault(unquote(key), unquote(value))
    return params


def _is_datadog_host(host: str) -> bool:
    return any(host == site or host.endswith("." + site) for site in DATADOG_SITES)


_DD_PATH = re.compile(r"/security/(?:.*/)?findings/(?P<id>[^/]+)/?$")
_KIBANA_PATH = re.compile(r"(?:/s/(?P<space>[^/]+))?/app/security/alerts(?:/redirect/(?P<id>[^/]+))?/?$")
_RISON_ID = re.compile(r"params:\((?:[^()]*?,)?(?:id|eventId):'?(?P<id>[A-Za-z0-9_.:-]+)")
_XPANSE_PATH = re.compile(r"/(?:incident-view|incidents)/(?P<id>[0-9]+)/?$")


def target_from_link(url: str, *, default_space: str | None = "default") -> Target | None:
    """The target a Datadog, Kibana or Xpanse link points at, or None when the link is not
    one of the forms in the module docstring or its id is malformed."""
    try:
        return _link(unescape(url.strip()), default_space=default_space)
    except (_TargetProblem, ValueError):
        return None


def _link(url: str, *, default_space: str | None) -> Target | None:
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if parts.scheme.lower() not in ("http", "https") or not host:
        return None
    params = _query(parts.query)
    path = unquote(parts.path) if parts.path else ""
    if _is_datadog_host(host):
        finding = params.get("finding_id") or params.get("findingId") or params.get("finding")
        if not finding:
            match = _DD_PATH.search(parts.path)  # segments decoded after the split
            finding = unquote(match.group("id")) if match else None
        if not finding:
            return None
        return _make_target(Platform.DATADOG, finding, space=None, default_space=default_space, source=url)
    kibana = _KIBANA_PATH.search(parts.path)
    if kibana:
        alert_id = kibana.group("id")
        alert_id = (
            unquote(alert_id) if alert_id else (params.get("alertId") or params.get("alert_id") or params.get("id"))
        )
        if not alert_id and "flyout" in params:
            rison = _RISON_ID.search(params["flyout"])
            alert_id = rison.group("id") if rison else None
        if not alert_id:
            return None
        # No /s/<space> in a Kibana URL means the space literally named "default".
        space = unquote(kibana.group("space")) if kibana.group("space") else "default"
        return _make_target(Platform.KIBANA, alert_id, space=space, default_space=default_space, source=url)
    incident: str | None = None
    if path.rstrip("/").endswith("/incident-view"):
        incident = params.get("caseId") or params.get("incidentId")
    if incident is None:
        match = _XPANSE_PATH.search(path)
        incident = match.group("id") if match else None
    if incident:
        return _make_target(Platform.XPANSE, incident, space=None, default_space=default_space, source=url)
    return None


# Entities, bare links and prefix:id words, in text order.
_SCAN = re.compile(
    r"<(?P<entity>[^<>@#!\s][^<>]*)>"
    r"|(?P<url>https?://[^\s<>|]+)"
    r"|(?<![\w/:.=+~-])(?P<word>(?:dd|datadog|kibana|xpanse):[^\s<>`*,;|()\[\]{}\"']+)",
    re.IGNORECASE,
)
_SKIP_KEYS = frozenset({"type", "block_id", "action_id", "style", "user_id", "team", "channel_id"})


def _strings(node: Any) -> Iterator[str]:
    """Every string anywhere in nested blocks/attachments, in document order."""
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for key, value in node.items():
            if key not in _SKIP_KEYS:
                yield from _strings(value)
    elif isinstance(node, list | tuple):
        for item in node:
            yield from _strings(item)


def _scan(text: str, *, default_space: str | None) -> Iterator[Target]:
    for match in _SCAN.finditer(text):
        target: Target | None = None
        if match.group("entity") is not None:
            url = match.group("entity").partition("|")[0]
            target = target_from_link(url, default_space=default_space)
        elif match.group("url") is not None:
            target = target_from_link(match.group("url"), default_space=default_space)
        else:
            word = unescape(match.group("word")).rstrip(".!?:")
            try:
                target = _target_from_word(word, default_space=default_space)
            except _TargetProblem:
                target = None
        if target is not None:
            yield target


def extract_targets(
    text: str,
    blocks: Sequence[dict[str, Any]] | None = None,
    *,
    attachments: Sequence[dict[str, Any]] | None = None,
    default_space: str | None = "default",
) -> list[Target]:
    """Every target named in a message: ``dd:``/``kibana:``/``xpanse:`` words and platform
    links in its text and in any string inside its blocks and attachments, de-duplicated,
    in order of first appearance. Text that is not a valid target is ignored; never raises."""
    found: dict[Target, None] = {}
    sources: list[str] = [text or ""]
    sources += _strings(list(blocks or []))
    sources += _strings(list(attachments or []))
    for source in sources:
        for target in _scan(source, default_space=default_space):
            found.setdefault(target, None)
    return list(found)


# ---------------------------------------------------------------- the parser


@dataclass(frozen=True)
class _Ctx:
    text: str
    actor_id: str
    default_space: str
    spec: VerbSpec

    def error(self, problem: str) -> UsageError:
        return UsageError(f"{problem}\nUsage: `{self.spec.usage}`", verb=self.spec.verb)

    def targets(self, toks: Sequence[_Tok], *, what: str = "targets") -> tuple[Target, ...]:
        if not toks:
            raise self.error(f"Missing {what}: name at least one item, e.g. `dd:<id>` or a link.")
        found: dict[Target, None] = {}
        for tok in toks:
            pieces = [tok.raw]
            # Commas separate ids in one word; links keep theirs (Kibana rison uses them).
            if not tok.quoted and not tok.raw.startswith("<") and "://" not in tok.raw:
                pieces = [p for p in tok.raw.split(",") if p]
            for piece in pieces:
                try:
                    found.setdefault(_target_from_text(piece, default_space=self.default_space), None)
                except _TargetProblem as exc:
                    raise self.error(_sentence(str(exc))) from None
        return tuple(found)

    def target(self, toks: Sequence[_Tok]) -> Target:
        targets = self.targets(toks, what="target")
        if len(targets) != 1:
            raise self.error(f"`{self.spec.verb}` takes one target; got {len(targets)}.")
        return targets[0]

    def user(self, tok: _Tok, *, role: str = "user") -> str:
        user = _user(tok, self.actor_id)
        if user is not None:
            return user
        shown = unescape(tok.raw)
        if shown.startswith("@"):
            raise self.error(
                f"`{shown}` is not a Slack mention: pick the {role} from Slack's @ autocomplete "
                "so the mention is linked, or write `me`."
            )
        raise self.error(f"Expected the {role} as an @mention or `me`, got `{shown}`.")

    def plain(self, toks: Sequence[_Tok]) -> str:
        """The text the tokens span, as typed (a single quoted token loses its quotes)."""
        if len(toks) == 1 and toks[0].quoted:
            return slack_to_plain(toks[0].raw).strip()
        return slack_to_plain(self.text[toks[0].start : toks[-1].end]).strip()


def _sentence(problem: str) -> str:
    problem = problem[:1].upper() + problem[1:]
    return problem if problem.endswith((".", "?", "!")) else problem + "."


def _split_tail(ctx: _Ctx, toks: list[_Tok]) -> tuple[list[_Tok], str | None]:
    """Split off the free-text comment after a standalone ``--``."""
    for index, tok in enumerate(toks):
        if not tok.quoted and tok.raw in _DASHES:
            comment = slack_to_plain(ctx.text[tok.end :]).strip()
            if len(comment) >= 2 and comment[0] in _QUOTES and comment[-1] == _QUOTES[comment[0]]:
                comment = comment[1:-1].strip()
            if not comment:
                raise ctx.error(f"Nothing after `{tok.raw}`: write the comment after it.")
            return toks[:index], comment
    return toks, None


def _parse_assign(ctx: _Ctx, toks: list[_Tok]) -> Command:
    if not toks:
        raise ctx.error("Missing targets and user: say what to assign and to whom.")
    last = toks[-1]
    if _user(last, ctx.actor_id) is None and not unescape(last.raw).startswith("@"):
        raise ctx.error("Missing user: end with `@someone` or `me`.")
    user = ctx.user(last)  # a bare "@name" gets the "not a Slack mention" message
    rest = toks[:-1]
    if rest and rest[-1].word == "to":
        rest = rest[:-1]
    return Command(verb=Verb.ASSIGN, targets=ctx.targets(rest), user=user)


def _parse_unassign(ctx: _Ctx, toks: list[_Tok]) -> Command:
    return Command(verb=Verb.UNASSIGN, targets=ctx.targets(toks))


def _case_ref(ctx: _Ctx, tok: _Tok) -> str:
    value = unescape(tok.raw).strip()
    if _UUID.match(value):
        return value.lower()
    if _CASE_KEY.match(value):
        return value.upper()
    raise ctx.error(f"`{value}` is not a case: give its key (like `SEC-123`) or its UUID.")


def _parse_attach(ctx: _Ctx, toks: list[_Tok]) -> Command:
    keyword = max((i for i, t in enumerate(toks) if t.word == "case"), default=None)
    if keyword is not None:
        rest, case_toks = toks[:keyword], toks[keyword + 1 :]
        if not case_toks:
            raise ctx.error("Missing the case after `case`: give its key (`SEC-123`) or UUID.")
        if len(case_toks) > 1:
            raise ctx.error("Give exactly one case after `case`.")
    elif toks and (_UUID.match(toks[-1].raw) or _CASE_KEY.match(toks[-1].raw)):
        rest, case_toks = toks[:-1], toks[-1:]
    else:
        raise ctx.error("Missing the case: end with `case SEC-123` or `case <case uuid>`.")
    if rest and rest[-1].word == "to":
        rest = rest[:-1]
    case = _case_ref(ctx, case_toks[0])
    targets = ctx.targets(rest)
    others = [t for t in targets if t.platform is not Platform.DATADOG]
    if others:
        names = ", ".join(f"`{t.key}`" for t in others)
        raise ctx.error(f"Only Datadog findings can be attached to a case; not {names}.")
    return Command(verb=Verb.ATTACH, targets=targets, case=case)


def _parse_resolve(ctx: _Ctx, toks: list[_Tok]) -> Command:
    toks, comment = _split_tail(ctx, toks)
    reason: str | None = None
    keyword = next((i for i, t in enumerate(toks) if t.word == "reason"), None)
    if keyword is not None:
        after = toks[keyword + 1 :]
        if not after:
            raise ctx.error("Missing the reason after `reason`.")
        if len(after) > 1:
            raise ctx.error("The reason is one word (like `false_positive`); put free text after `--`.")
        reason = unescape(after[0].raw).lower()
        toks = toks[:keyword]
    targets = ctx.targets(toks)
    if reason is not None:
        for platform in dict.fromkeys(t.platform for t in targets):
            allowed = RESOLVE_REASONS.get(platform)
            normalise = _REASON_CHECKS.get(platform)
            if allowed is None or normalise is None:
                continue
            # The client's own check, so every form the client accepts (e.g. Xpanse's
            # short `no_risk`) parses, and nothing it refuses does.
            try:
                normalise(reason)
            except UsageError:
                raise ctx.error(
                    f"`{reason}` is not a {platform.label} reason; use one of "
                    + ", ".join(f"`{r}`" for r in allowed)
                    + "."
                ) from None
    return Command(verb=Verb.RESOLVE, targets=targets, reason=reason, comment=comment)


def _xpanse_only(ctx: _Ctx, target: Target) -> None:
    if target.platform is not Platform.XPANSE:
        raise ctx.error(
            f"`{ctx.spec.verb}` works on Xpanse incidents only; `{target.key}` is a {target.platform.label} item."
        )


def _parse_comment(ctx: _Ctx, toks: list[_Tok]) -> Command:
    if not toks:
        raise ctx.error("Missing the Xpanse incident and the comment text.")
    target = ctx.target(toks[:1])
    _xpanse_only(ctx, target)
    if len(toks) < 2:
        raise ctx.error("Missing the comment text after the incident.")
    text = ctx.plain(toks[1:])
    if not text:
        raise ctx.error("The comment text is empty.")
    return Command(verb=Verb.COMMENT, targets=(target,), text=text)


def _parse_severity(ctx: _Ctx, toks: list[_Tok]) -> Command:
    if not toks:
        raise ctx.error("Missing the Xpanse incident and the severity.")
    target = ctx.target(toks[:1])
    _xpanse_only(ctx, target)
    if len(toks) != 2:
        raise ctx.error("Missing the severity." if len(toks) < 2 else "Give one incident and one severity.")
    level = unescape(toks[1].raw).lower()
    if level not in SEVERITIES:
        raise ctx.error(f"`{level}` is not a severity; use one of " + ", ".join(f"`{s}`" for s in SEVERITIES) + ".")
    return Command(verb=Verb.SEVERITY, targets=(target,), severity=level)


def _parse_one_target(ctx: _Ctx, toks: list[_Tok]) -> Command:
    return Command(verb=ctx.spec.verb, targets=(ctx.target(toks),))


def _parse_handoff(ctx: _Ctx, toks: list[_Tok]) -> Command:
    to_index = next((i for i, t in enumerate(toks) if t.word == "to"), None)
    if to_index is not None:
        before, after = toks[:to_index], toks[to_index + 1 :]
    elif len(toks) == 2:
        before, after = toks[:1], toks[1:]
    else:
        before, after = [], toks
    if not after:
        raise ctx.error("Missing the person to hand off to: end with `to @someone`.")
    if len(before) > 1 or len(after) > 1:
        raise ctx.error("Name at most one person to hand off from and exactly one to hand off to.")
    to_user = ctx.user(after[0], role="person to hand off to")
    from_user = ctx.user(before[0], role="person to hand off from") if before else ctx.actor_id
    if from_user == to_user:
        raise ctx.error("The person handing off and the one receiving are the same.")
    return Command(verb=Verb.HANDOFF, user=to_user, from_user=from_user)


def _parse_optional_user(ctx: _Ctx, toks: list[_Tok]) -> Command:
    if len(toks) > 1:
        raise ctx.error("Name at most one person.")
    user = ctx.user(toks[0]) if toks else ctx.actor_id
    return Command(verb=ctx.spec.verb, user=user)


def _platform(word: str) -> Platform | None:
    return _PLATFORM_WORDS.get(word.lower())


def _identity(ctx: _Ctx, platform: Platform, tok: _Tok, raw_value: str) -> str:
    value = raw_value
    if value.startswith("<") and value.endswith(">"):
        # Slack links e-mail addresses as <mailto:a@b.c|a@b.c>.
        value = value[1:-1].partition("|")[0]
        value = value.removeprefix("mailto:")
    value = unescape(value).strip()
    if platform is Platform.DATADOG and not _UUID.match(value):
        raise ctx.error(f"`{value}` is not a Datadog user id (a UUID, like `f315bdaf-9ee7-…`).")
    if platform is Platform.KIBANA and not _KIBANA_UID.match(value):
        raise ctx.error(f"`{value}` is not a Kibana user profile uid (like `u_…_0`).")
    if platform is Platform.XPANSE and not _EMAIL.match(value):
        raise ctx.error(f"`{value}` is not an e-mail address (Xpanse identifies users by e-mail).")
    return value.lower() if platform is not Platform.KIBANA else value


def _parse_map(ctx: _Ctx, toks: list[_Tok]) -> Command:
    if not toks:
        raise ctx.error("Missing the user to map: start with an @mention.")
    user = ctx.user(toks[0])
    identities: dict[Platform, str] = {}
    for tok in toks[1:]:
        key, equals, value = tok.raw.partition("=")
        platform = _platform(key) if equals else None
        if not equals:
            raise ctx.error(f"Expected `platform=value`, got `{unescape(tok.raw)}`.")
        if platform is None:
            raise ctx.error(f"`{key}` is not a platform; use `datadog=`, `kibana=` or `xpanse=`.")
        if not value:
            raise ctx.error(f"Missing the value after `{key}=`.")
        if platform in identities:
            raise ctx.error(f"{platform.label} is given twice.")
        identities[platform] = _identity(ctx, platform, tok, value)
    return Command(verb=Verb.MAP, user=user, identities=identities)


def _parse_unmap(ctx: _Ctx, toks: list[_Tok]) -> Command:
    if len(toks) != 2:
        raise ctx.error("Name the user and one platform.")
    user = ctx.user(toks[0])
    platform = _platform(toks[1].raw)
    if platform is None:
        raise ctx.error(f"`{unescape(toks[1].raw)}` is not a platform; use datadog, kibana or xpanse.")
    return Command(verb=Verb.UNMAP, user=user, platform=platform)


def _unknown_verb(word: str) -> UsageError:
    verbs = ", ".join(f"`{s.verb}`" for s in GRAMMAR)
    close = get_close_matches(word, list(_BY_WORD), n=1)
    hint = f" Did you mean `{close[0]}`?" if close else ""
    return UsageError(
        f"Unknown command `{word}`.{hint}\nCommands: {verbs}.\nType `/triage help` for details.",
        verb=None,
    )


def _parse_help(ctx: _Ctx, toks: list[_Tok]) -> Command:
    if not toks:
        return Command(verb=Verb.HELP)
    if len(toks) > 1:
        raise ctx.error("Ask about one command at a time.")
    spec = _BY_WORD.get(toks[0].word)
    if spec is None:
        raise _unknown_verb(unescape(toks[0].raw))
    return Command(verb=Verb.HELP, help_verb=spec.verb)


_PARSERS: dict[Verb, Callable[[_Ctx, list[_Tok]], Command]] = {
    Verb.ASSIGN: _parse_assign,
    Verb.UNASSIGN: _parse_unassign,
    Verb.ATTACH: _parse_attach,
    Verb.RESOLVE: _parse_resolve,
    Verb.COMMENT: _parse_comment,
    Verb.SEVERITY: _parse_severity,
    Verb.SHOW: _parse_one_target,
    Verb.HANDOFF: _parse_handoff,
    Verb.HISTORY: _parse_one_target,
    Verb.MINE: _parse_optional_user,
    Verb.MAP: _parse_map,
    Verb.UNMAP: _parse_unmap,
    Verb.WHOAMI: _parse_optional_user,
    Verb.HELP: _parse_help,
}


def parse_command(text: str, *, actor_id: str, default_space: str = "default") -> Command:
    """Parse the text of ``/triage`` (as Slack sends it) into a ``Command``.

    Empty text means help. Raises ``UsageError`` (with ``verb`` set when the verb
    was recognised) whose message says what is wrong and ends with the usage line.
    """
    toks = _tokenize(text or "")
    if not toks:
        return Command(verb=Verb.HELP)
    spec = _BY_WORD.get(toks[0].word)
    if spec is None:
        raise _unknown_verb(unescape(toks[0].raw))
    ctx = _Ctx(text=text, actor_id=actor_id, default_space=default_space, spec=spec)
    return _PARSERS[spec.verb](ctx, toks[1:])
