"""The parsers of the status verbs: ``resolve``, ``reopen``, ``ack``, ``tag`` and ``detach``.

Each platform takes its own words (Datadog mute and unmute reasons, Kibana close
reasons, Xpanse statuses), checked with the rules the clients apply; bad input is
refused here with the valid forms, before anything is stored. Pure.
"""

from __future__ import annotations

from bot import rules
from bot.errors import UsageError
from bot.models import Platform, Target, Verb
from bot.slack.parsing import Command, Ctx, only_on, split_tail
from bot.slack.tokens import Tok, tokenize
from bot.targets import unescape

__all__ = ["parse_ack", "parse_detach", "parse_reopen", "parse_resolve", "parse_tag", "tag_changes"]

_WHAT = {"reason": "reason", "for": "duration", "until": "date"}


def _options(ctx: Ctx, toks: list[Tok], keywords: tuple[str, ...]) -> tuple[list[Tok], dict[str, Tok]]:
    """Split the targets from the ``keyword value`` pairs that follow them."""
    first = next((i for i, t in enumerate(toks) if t.word in keywords), len(toks))
    found: dict[str, Tok] = {}
    rest = toks[first:]
    i = 0
    while i < len(rest):
        word = rest[i].word
        if word not in keywords:
            if found.get("reason") is rest[i - 1]:
                raise ctx.error("The reason is one word (like `false_positive`); put free text after `--`.")
            raise ctx.error(f"Expected {' or '.join(f'`{k}`' for k in keywords)} here, not `{unescape(rest[i].raw)}`.")
        if i + 1 >= len(rest):
            raise ctx.error(f"Missing the {_WHAT[word]} after `{word}`.")
        expiry = {"for", "until"}
        if word in found or (word in expiry and expiry & found.keys()):
            raise ctx.error(f"Give `{word}` once." if word == "reason" else "Give one expiry: `for …` or `until …`.")
        found[word] = rest[i + 1]
        i += 2
    return toks[:first], found


def _reason(
    ctx: Ctx, targets: tuple[Target, ...], raw: Tok | None, table: dict[Platform, tuple[str, ...]]
) -> str | None:
    if raw is None:
        return None
    reason = unescape(raw.raw).lower()
    platforms = [p for p in dict.fromkeys(t.platform for t in targets) if p in table]
    if not platforms:
        where = " and ".join(p.label for p in table)
        raise ctx.error(f"Only {where} items take a reason for `{ctx.spec.verb}`.")
    for platform in platforms:
        try:
            # The platform's own rule, so every form the client accepts parses, and nothing it refuses does.
            if ctx.spec.verb is Verb.REOPEN:
                rules.normalise_mute_reason(reason, mute=False)
            else:
                rules.normalise_reason(platform, reason)
        except UsageError:
            raise ctx.error(
                f"`{reason}` is not a {platform.label} reason; use one of "
                + ", ".join(f"`{r}`" for r in table[platform])
                + "."
            ) from None
    return reason


def _description(ctx: Ctx, targets: tuple[Target, ...], comment: str | None) -> None:
    if comment and any(t.platform is Platform.DATADOG for t in targets):
        try:
            rules.check_description(comment, verb=ctx.spec.verb)
        except UsageError as exc:
            raise ctx.error(exc.message) from None


def parse_resolve(ctx: Ctx, toks: list[Tok]) -> Command:
    toks, comment = split_tail(ctx, toks)
    toks, found = _options(ctx, toks, ("reason", "for", "until"))
    targets = ctx.targets(toks)
    only_on(ctx, targets)
    reason = _reason(ctx, targets, found.get("reason"), rules.RESOLVE_REASONS)
    datadog = any(t.platform is Platform.DATADOG for t in targets)
    if datadog and reason is None:
        raise ctx.error(
            "Muting a Datadog finding needs a reason: add `reason <reason>` with one of "
            + ", ".join(f"`{r}`" for r in rules.DATADOG_MUTE_REASONS)
            + "."
        )
    expire_at: int | None = None
    for keyword in ("for", "until"):
        if keyword in found:
            if not datadog:
                raise ctx.error("An expiry (`for …` / `until …`) is for Datadog mutes only.")
            try:
                expire_at = rules.parse_expiry(keyword, unescape(found[keyword].raw))
            except UsageError as exc:
                raise ctx.error(exc.message) from None
    _description(ctx, targets, comment)
    return Command(verb=Verb.RESOLVE, targets=targets, reason=reason, comment=comment, expire_at=expire_at)


def parse_reopen(ctx: Ctx, toks: list[Tok]) -> Command:
    toks, comment = split_tail(ctx, toks)
    toks, found = _options(ctx, toks, ("reason",))
    targets = ctx.targets(toks)
    only_on(ctx, targets)
    reason = _reason(ctx, targets, found.get("reason"), rules.REOPEN_REASONS)
    _description(ctx, targets, comment)
    return Command(verb=Verb.REOPEN, targets=targets, reason=reason, comment=comment)


def parse_ack(ctx: Ctx, toks: list[Tok]) -> Command:
    targets = ctx.targets(toks)
    only_on(ctx, targets)
    return Command(verb=Verb.ACK, targets=targets)


def parse_detach(ctx: Ctx, toks: list[Tok]) -> Command:
    if toks and toks[0].word == "from":
        raise ctx.error("Name the findings only: a finding leaves whichever case holds it.")
    targets = ctx.targets(toks)
    only_on(ctx, targets)
    return Command(verb=Verb.DETACH, targets=targets)


def _is_tag(tok: Tok) -> bool:
    # A quoted "+two words" is a tag too, to be refused for its space by the tag rule.
    raw = tok.raw
    return raw[:1] in ("+", "-") and raw not in ("--", "-", "+")


def _changes(toks: list[Tok]) -> tuple[list[str], list[str]]:
    add: list[str] = []
    remove: list[str] = []
    for tok in toks:
        if not _is_tag(tok):
            raise UsageError(f"`{unescape(tok.raw)}` is not a tag change: write {rules.TAG_FORMS}.", verb=Verb.TAG)
        text = unescape(tok.raw)
        (add if text[0] == "+" else remove).append(text[1:])
    return rules.check_tags(add, remove)


def tag_changes(text: str) -> tuple[list[str], list[str]]:
    """The tags to add and remove in ``+a -b`` text (the tags modal); ``UsageError`` with the forms."""
    return _changes(tokenize(text or ""))


def parse_tag(ctx: Ctx, toks: list[Tok]) -> Command:
    first = next((i for i, t in enumerate(toks) if _is_tag(t)), len(toks))
    targets = ctx.targets(toks[:first])
    only_on(ctx, targets)
    try:
        adding, removing = _changes(toks[first:])
    except UsageError as exc:
        raise ctx.error(exc.message) from None
    return Command(verb=Verb.TAG, targets=targets, tags_add=tuple(adding), tags_remove=tuple(removing))
