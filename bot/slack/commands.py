"""The ``/triage`` grammar, its parser, its generated help and usage lines.

Everything here is pure: text in, typed values out, ``UsageError`` on bad input.

The grammar is declared once, as data (``GRAMMAR``); the parser's usage lines and
``help_text`` are both generated from it, so help cannot drift from what parses.
Targets are read by ``bot.targets`` and every per-platform fact (id and identity
formats, reasons, severities, which verb works on which platform) comes from
``bot.rules``, the same rules the platform clients and the mapping store apply.

Users are Slack mentions (``<@U123>`` or ``<@U123|name>``) or ``me`` (the actor).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from difflib import get_close_matches

from pydantic import BaseModel, ConfigDict, Field

from bot import rules
from bot.errors import UsageError
from bot.models import Platform, Target, Verb
from bot.targets import TargetProblem, platform_word, read_target, unescape

__all__ = [
    "GRAMMAR",
    "SPECS",
    "TARGETS_HELP",
    "Command",
    "VerbSpec",
    "help_text",
    "parse_command",
    "slack_to_plain",
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

_USER_ID = re.compile(r"^[UW][A-Z0-9]+$")

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
        for platform, reasons in rules.RESOLVE_REASONS.items():
            lines.append(f"{platform.label} reasons: " + ", ".join(f"`{r}`" for r in reasons))
    if spec.examples:
        lines.append("*Examples:*")
        lines += [f"• `/triage {example}`" for example in spec.examples]
    if spec.verb not in (Verb.MINE, Verb.MAP, Verb.UNMAP, Verb.WHOAMI, Verb.HELP, Verb.HANDOFF):
        lines.append(TARGETS_HELP)
    return "\n".join(lines)


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
                    found.setdefault(read_target(piece, default_space=self.default_space), None)
                except TargetProblem as exc:
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
    try:
        return rules.normalise_case(unescape(tok.raw))
    except UsageError as exc:
        raise ctx.error(exc.message) from None


def _parse_attach(ctx: _Ctx, toks: list[_Tok]) -> Command:
    keyword = max((i for i, t in enumerate(toks) if t.word == "case"), default=None)
    if keyword is not None:
        rest, case_toks = toks[:keyword], toks[keyword + 1 :]
        if not case_toks:
            raise ctx.error("Missing the case after `case`: give its key (`SEC-123`) or UUID.")
        if len(case_toks) > 1:
            raise ctx.error("Give exactly one case after `case`.")
    elif toks and rules.is_case_ref(toks[-1].raw):
        rest, case_toks = toks[:-1], toks[-1:]
    else:
        raise ctx.error("Missing the case: end with `case SEC-123` or `case <case uuid>`.")
    if rest and rest[-1].word == "to":
        rest = rest[:-1]
    case = _case_ref(ctx, case_toks[0])
    targets = ctx.targets(rest)
    others = [t for t in targets if not rules.supports(t.platform, Verb.ATTACH)]
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
            allowed = rules.RESOLVE_REASONS.get(platform)
            if allowed is None:
                continue
            # The platform's own rule, so every form the client accepts (e.g. Xpanse's
            # short `no_risk`) parses, and nothing it refuses does.
            try:
                rules.normalise_reason(platform, reason)
            except UsageError:
                raise ctx.error(
                    f"`{reason}` is not a {platform.label} reason; use one of "
                    + ", ".join(f"`{r}`" for r in allowed)
                    + "."
                ) from None
    return Command(verb=Verb.RESOLVE, targets=targets, reason=reason, comment=comment)


def _xpanse_only(ctx: _Ctx, target: Target) -> None:
    if not rules.supports(target.platform, ctx.spec.verb):
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
    allowed = rules.SEVERITIES[target.platform]
    if level not in allowed:
        raise ctx.error(f"`{level}` is not a severity; use one of " + ", ".join(f"`{s}`" for s in allowed) + ".")
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


def _identity(ctx: _Ctx, platform: Platform, raw_value: str) -> str:
    value = raw_value
    if value.startswith("<") and value.endswith(">"):
        # Slack links e-mail addresses as <mailto:a@b.c|a@b.c>.
        value = value[1:-1].partition("|")[0]
        value = value.removeprefix("mailto:")
    try:
        # The mapping store's own rule, so what parses here is what it stores.
        return rules.normalise_identity(platform, unescape(value))
    except UsageError as exc:
        raise ctx.error(exc.message) from None


def _parse_map(ctx: _Ctx, toks: list[_Tok]) -> Command:
    if not toks:
        raise ctx.error("Missing the user to map: start with an @mention.")
    user = ctx.user(toks[0])
    identities: dict[Platform, str] = {}
    for tok in toks[1:]:
        key, equals, value = tok.raw.partition("=")
        platform = platform_word(key) if equals else None
        if not equals:
            raise ctx.error(f"Expected `platform=value`, got `{unescape(tok.raw)}`.")
        if platform is None:
            raise ctx.error(f"`{key}` is not a platform; use `datadog=`, `kibana=` or `xpanse=`.")
        if not value:
            raise ctx.error(f"Missing the value after `{key}=`.")
        if platform in identities:
            raise ctx.error(f"{platform.label} is given twice.")
        identities[platform] = _identity(ctx, platform, value)
    return Command(verb=Verb.MAP, user=user, identities=identities)


def _parse_unmap(ctx: _Ctx, toks: list[_Tok]) -> Command:
    if len(toks) != 2:
        raise ctx.error("Name the user and one platform.")
    user = ctx.user(toks[0])
    platform = platform_word(toks[1].raw)
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


def parse_command(text: str, *, actor_id: str, default_space: str = rules.DEFAULT_KIBANA_SPACE) -> Command:
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
