"""The ``/triage`` commands: the parser from Slack text to a typed ``Command``.

Everything here is pure: text in, typed values out, ``UsageError`` on bad input.
The grammar and its help live in ``bot.slack.grammar`` (re-exported here: ``GRAMMAR``,
``help_text``, ``usage``), Slack tokens in ``bot.slack.tokens``, targets in
``bot.targets``, and every per-platform fact (id and identity formats, reasons,
severities, which verb works on which platform) in ``bot.rules``, the same rules the
platform clients and the mapping store apply.

Users are Slack mentions (``<@U123>`` or ``<@U123|name>``) or ``me`` (the actor).
"""

from __future__ import annotations

from collections.abc import Callable
from difflib import get_close_matches

from bot import rules
from bot.errors import UsageError
from bot.models import Platform, Target, Verb
from bot.slack.grammar import BY_WORD, GRAMMAR, SPECS, TARGETS_HELP, VerbSpec, help_text, usage
from bot.slack.parsing import Command
from bot.slack.parsing import Ctx as _Ctx
from bot.slack.tokens import Tok, mentioned_user, slack_to_plain, tokenize
from bot.slack.verb_parsers import parse_ack, parse_detach, parse_reopen, parse_resolve, parse_tag
from bot.targets import platform_word, unescape

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


# ---------------------------------------------------------------- the parser


def _parse_assign(ctx: _Ctx, toks: list[Tok]) -> Command:
    if not toks:
        raise ctx.error("Missing targets and user: say what to assign and to whom.")
    last = toks[-1]
    if mentioned_user(last, ctx.actor_id) is None and not unescape(last.raw).startswith("@"):
        raise ctx.error("Missing user: end with `@someone` or `me`.")
    user = ctx.user(last)  # a bare "@name" gets the "not a Slack mention" message
    rest = toks[:-1]
    if rest and rest[-1].word == "to":
        rest = rest[:-1]
    return Command(verb=Verb.ASSIGN, targets=ctx.targets(rest), user=user)


def _parse_unassign(ctx: _Ctx, toks: list[Tok]) -> Command:
    return Command(verb=Verb.UNASSIGN, targets=ctx.targets(toks))


def _case_ref(ctx: _Ctx, tok: Tok) -> str:
    try:
        return rules.normalise_case(unescape(tok.raw))
    except UsageError as exc:
        raise ctx.error(exc.message) from None


def _parse_attach(ctx: _Ctx, toks: list[Tok]) -> Command:
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


def _xpanse_only(ctx: _Ctx, target: Target) -> None:
    if not rules.supports(target.platform, ctx.spec.verb):
        raise ctx.error(
            f"`{ctx.spec.verb}` works on Xpanse incidents only; `{target.key}` is a {target.platform.label} item."
        )


def _parse_comment(ctx: _Ctx, toks: list[Tok]) -> Command:
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


def _parse_severity(ctx: _Ctx, toks: list[Tok]) -> Command:
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


def _parse_one_target(ctx: _Ctx, toks: list[Tok]) -> Command:
    return Command(verb=ctx.spec.verb, targets=(ctx.target(toks),))


def _parse_handoff(ctx: _Ctx, toks: list[Tok]) -> Command:
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


def _parse_optional_user(ctx: _Ctx, toks: list[Tok]) -> Command:
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


def _parse_map(ctx: _Ctx, toks: list[Tok]) -> Command:
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


def _parse_unmap(ctx: _Ctx, toks: list[Tok]) -> Command:
    if len(toks) != 2:
        raise ctx.error("Name the user and one platform.")
    user = ctx.user(toks[0])
    platform = platform_word(toks[1].raw)
    if platform is None:
        raise ctx.error(f"`{unescape(toks[1].raw)}` is not a platform; use datadog, kibana or xpanse.")
    return Command(verb=Verb.UNMAP, user=user, platform=platform)


def _unknown_verb(word: str) -> UsageError:
    verbs = ", ".join(f"`{s.verb}`" for s in GRAMMAR)
    close = get_close_matches(word, list(BY_WORD), n=1)
    hint = f" Did you mean `{close[0]}`?" if close else ""
    return UsageError(
        f"Unknown command `{word}`.{hint}\nCommands: {verbs}.\nType `/triage help` for details.",
        verb=None,
    )


def _parse_help(ctx: _Ctx, toks: list[Tok]) -> Command:
    if not toks:
        return Command(verb=Verb.HELP)
    if len(toks) > 1:
        raise ctx.error("Ask about one command at a time.")
    spec = BY_WORD.get(toks[0].word)
    if spec is None:
        raise _unknown_verb(unescape(toks[0].raw))
    return Command(verb=Verb.HELP, help_verb=spec.verb)


def _parse_oncall(ctx: _Ctx, toks: list[Tok]) -> Command:
    if len(toks) > 1:
        raise ctx.error("Name at most one schedule.")
    return Command(verb=Verb.ONCALL, text=unescape(toks[0].raw) if toks else None)


_PARSERS: dict[Verb, Callable[[_Ctx, list[Tok]], Command]] = {
    Verb.ASSIGN: _parse_assign,
    Verb.UNASSIGN: _parse_unassign,
    Verb.ATTACH: _parse_attach,
    Verb.DETACH: parse_detach,
    Verb.RESOLVE: parse_resolve,
    Verb.REOPEN: parse_reopen,
    Verb.ACK: parse_ack,
    Verb.TAG: parse_tag,
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
    Verb.ONCALL: _parse_oncall,
}


def parse_command(text: str, *, actor_id: str, default_space: str = rules.DEFAULT_KIBANA_SPACE) -> Command:
    """Parse the text of ``/triage`` (as Slack sends it) into a ``Command``.

    Empty text means help. Raises ``UsageError`` (with ``verb`` set when the verb
    was recognised) whose message says what is wrong and ends with the usage line.
    """
    toks = tokenize(text or "")
    if not toks:
        return Command(verb=Verb.HELP)
    spec = BY_WORD.get(toks[0].word)
    if spec is None:
        raise _unknown_verb(unescape(toks[0].raw))
    ctx = _Ctx(text=text, actor_id=actor_id, default_space=default_space, spec=spec)
    return _PARSERS[spec.verb](ctx, toks[1:])
