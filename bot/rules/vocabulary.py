"""Each platform's triage vocabulary: which verb works where, and the rules of the newer verbs.

Datadog mutes (reasons, expiry, description), Kibana workflow statuses and tags, and
the Xpanse status a reopened incident goes back to. Pure, like the rest of ``bot.rules``:
the parser, the core's checks, the Block Kit builders and the clients read these, so an
input one accepts is never refused by another. Sources: ``shared/contracts/NOTES.md``
§6.1 (mute), §6.4 (tags and notes), §6.5 (incident details) and ``shared/real/BEHAVIOUR.md``
§1.4 (detach).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from bot.errors import UsageError
from bot.models import Platform, Verb

# ---------------------------------------------------------------- Datadog mute

# MuteSecurityFindings takes the reasons in upper case; the bot shows and parses them in lower case.
DATADOG_MUTE_REASONS: tuple[str, ...] = (
    "false_positive",
    "risk_accepted",
    "pending_fix",
    "no_fix",
    "duplicate",
    "other",
)
# The reasons the same endpoint takes to unmute (a mute reason there is a 422).
DATADOG_UNMUTE_REASONS: tuple[str, ...] = ("no_pending_fix", "human_error", "no_longer_accepted_risk", "other")
DATADOG_UNMUTE_DEFAULT = "other"
# Findings per mute request and the description limit (the contract's added maxItems/maxLength).
DATADOG_MUTE_MAX = 100
DATADOG_DESCRIPTION_MAX = 280
# Findings per detach request ("limit of 50 security findings per request").
DATADOG_DETACH_MAX = 50

EXPIRY_FORMS = "`for 30d` (days), `for 12h`, `for 2w` or `until 2027-01-31`"
_FOR = re.compile(r"^([1-9][0-9]{0,4})([hdw])$")
_UNITS = {"h": timedelta(hours=1), "d": timedelta(days=1), "w": timedelta(weeks=1)}


def _reason_key(reason: str) -> str:
    return re.sub(r"[\s-]+", "_", reason.strip().lower())


def normalise_mute_reason(reason: str | None, *, mute: bool = True) -> str:
    """The Datadog mute (or unmute) reason in lower case; ``UsageError`` listing the valid ones.

    A missing unmute reason is ``other``; a mute must name its reason (it is the "why" a
    muted finding shows).
    """
    allowed = DATADOG_MUTE_REASONS if mute else DATADOG_UNMUTE_REASONS
    verb = Verb.RESOLVE if mute else Verb.REOPEN
    if reason is None or not reason.strip():
        if not mute:
            return DATADOG_UNMUTE_DEFAULT
        raise UsageError(
            "Muting a Datadog finding needs a reason: add `reason <reason>` with one of "
            + ", ".join(f"`{r}`" for r in allowed)
            + ".",
            verb=verb,
        )
    value = _reason_key(reason)
    if value not in allowed:
        what = "mute" if mute else "unmute"
        raise UsageError(
            f"`{reason.strip()[:60]}` is not a Datadog {what} reason; use one of "
            + ", ".join(f"`{r}`" for r in allowed)
            + ".",
            verb=verb,
        )
    return value


def check_description(text: str | None, *, verb: Verb = Verb.RESOLVE) -> str | None:
    """The mute description stripped (None for none); ``UsageError`` past 280 characters."""
    value = (text or "").strip()
    if not value:
        return None
    if len(value) > DATADOG_DESCRIPTION_MAX:
        raise UsageError(
            f"A Datadog mute description is at most {DATADOG_DESCRIPTION_MAX} characters; "
            f"yours has {len(value)}. Shorten the text after `--`.",
            verb=verb,
        )
    return value


def _now_ms() -> int:
    return int(datetime.now(UTC).timestamp() * 1000)


def parse_expiry(keyword: str, value: str, *, now_ms: int | None = None) -> int:
    """``for 30d`` / ``until 2027-01-31`` as Unix milliseconds; ``UsageError`` if malformed or past.

    ``until`` a date means to the end of that day (UTC): the mute lifts at the next midnight.
    A past date's message names the date typed.
    """
    now = _now_ms() if now_ms is None else now_ms
    text = value.strip().lower()
    if keyword == "for":
        found = _FOR.match(text)
        if not found:
            raise UsageError(f"`for {value}` is not a duration; write {EXPIRY_FORMS}.", verb=Verb.RESOLVE)
        delta = _UNITS[found.group(2)] * int(found.group(1))
        return now + int(delta.total_seconds() * 1000)
    if keyword == "until":
        try:
            day = date.fromisoformat(text)
        except ValueError:
            raise UsageError(f"`until {value}` is not a date; write {EXPIRY_FORMS}.", verb=Verb.RESOLVE) from None
        at = datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(days=1)
        expire_at = int(at.timestamp() * 1000) - 1  # the last millisecond of that day
        if expire_at <= now:
            raise UsageError(
                f"`until {day.isoformat()}` is in the past; give a future date: {EXPIRY_FORMS}.", verb=Verb.RESOLVE
            )
        return expire_at
    raise UsageError(f"Expected an expiry: {EXPIRY_FORMS}.", verb=Verb.RESOLVE)


def check_expiry(expire_at: int | None, *, now_ms: int | None = None) -> int | None:
    """``expire_at`` (Unix ms) unchanged; ``UsageError`` when it is not in the future."""
    if expire_at is None:
        return None
    now = _now_ms() if now_ms is None else now_ms
    if expire_at <= now:
        shown = datetime.fromtimestamp(expire_at / 1000, UTC).strftime("%Y-%m-%d %H:%M UTC")
        raise UsageError(
            f"The mute expiry {shown} is in the past; give a future one: {EXPIRY_FORMS}.", verb=Verb.RESOLVE
        )
    return expire_at


def expiry_text(expire_at: int | None) -> str:
    """An expiry as people read it (``2027-01-31 23:59 UTC``), ``indefinitely`` for none."""
    if expire_at is None:
        return "indefinitely"
    return datetime.fromtimestamp(expire_at / 1000, UTC).strftime("%Y-%m-%d %H:%M UTC")


# ---------------------------------------------------------------- Kibana status and tags

KIBANA_OPEN = "open"
KIBANA_ACKNOWLEDGED = "acknowledged"
KIBANA_CLOSED = "closed"
TAG_MAX = 100
TAG_FORMS = "`+tag` to add and `-tag` to remove, e.g. `+triaged -noise` (no spaces inside a tag)"
_TAG = re.compile(r"^[^\s\"'`<>,]+$")


def normalise_tag(tag: str) -> str:
    """One Kibana alert tag as typed; ``UsageError`` for an empty one, spaces or quotes."""
    value = tag.strip()
    if not value or len(value) > TAG_MAX or not _TAG.match(value):
        raise UsageError(
            f"{tag[:60]!r} is not a tag: tags are one word of at most {TAG_MAX} characters "
            f"(no spaces, quotes or commas). Write {TAG_FORMS}.",
            verb=Verb.TAG,
        )
    return value


def check_tags(add: list[str], remove: list[str]) -> tuple[list[str], list[str]]:
    """Both lists normalised and de-duplicated; ``UsageError`` for none or a tag in both."""
    adding = list(dict.fromkeys(normalise_tag(t) for t in add))
    removing = list(dict.fromkeys(normalise_tag(t) for t in remove))
    if not adding and not removing:
        raise UsageError(f"Name at least one tag: {TAG_FORMS}.", verb=Verb.TAG)
    both = [t for t in adding if t in removing]
    if both:
        raise UsageError(
            "A tag cannot be added and removed at once: " + ", ".join(f"`{t}`" for t in both) + ".", verb=Verb.TAG
        )
    return adding, removing


# ---------------------------------------------------------------- Xpanse

# update_incident's status for an incident back in work.
XPANSE_REOPEN_STATUS = "under_investigation"
# Assets a card lists from get_incident_extra_data.
XPANSE_TOP_ASSETS = 3

# ---------------------------------------------------------------- per platform


@dataclass(frozen=True)
class Capabilities:
    """What the bot can do to one platform's items."""

    attach: bool = False  # attach to a case
    detach: bool = False  # take out of its case
    resolve: bool = False  # Datadog: mute
    mute: bool = False  # resolve means mute, reopen means unmute (Datadog)
    reason_required: bool = False  # a resolve must name a reason
    reopen: bool = False
    acknowledge: bool = False
    tag: bool = False
    notes: bool = False  # writes are attributed with a note on the item (Kibana)
    comment: bool = False
    severity: bool = False


CAPABILITIES: dict[Platform, Capabilities] = {
    # The contract has no Datadog finding operation for comment or severity; resolve is a mute.
    Platform.DATADOG: Capabilities(
        attach=True, detach=True, resolve=True, mute=True, reason_required=True, reopen=True
    ),
    # Kibana has a close reason but no comment API; Security notes carry the attribution.
    Platform.KIBANA: Capabilities(resolve=True, reopen=True, acknowledge=True, tag=True, notes=True),
    Platform.XPANSE: Capabilities(resolve=True, reason_required=True, reopen=True, comment=True, severity=True),
}

# The reasons each platform accepts for reopening (Datadog's unmute reasons).
REOPEN_REASONS: dict[Platform, tuple[str, ...]] = {Platform.DATADOG: DATADOG_UNMUTE_REASONS}


def supports(platform: Platform, verb: Verb) -> bool:
    """Whether ``verb`` can act on ``platform``'s items (verbs with no platform rule: True)."""
    caps = CAPABILITIES[platform]
    rule = {
        Verb.ATTACH: caps.attach,
        Verb.DETACH: caps.detach,
        Verb.RESOLVE: caps.resolve,
        Verb.REOPEN: caps.reopen,
        Verb.ACK: caps.acknowledge,
        Verb.TAG: caps.tag,
        Verb.COMMENT: caps.comment,
        Verb.SEVERITY: caps.severity,
    }
    return rule.get(verb, True)


def platforms_for(verb: Verb) -> list[Platform]:
    """The platforms ``verb`` works on, in the enum's order."""
    return [p for p in Platform if supports(p, verb)]


# ---------------------------------------------------------------- severity order (reminders)

# Each platform's item severities, lowest first (shared/contracts/NOTES.md: Datadog findings
# run info … critical; Kibana rules low … critical; Xpanse incidents low … critical).
SEVERITY_ORDER: dict[Platform, tuple[str, ...]] = {
    Platform.DATADOG: ("info", "low", "medium", "high", "critical"),
    Platform.KIBANA: ("low", "medium", "high", "critical"),
    Platform.XPANSE: ("informational", "low", "medium", "high", "critical"),
}


def severity_at_least(platform: Platform, severity: str | None, floor: str) -> bool:
    """True when ``severity`` is ``floor`` or above in ``platform``'s order; an unknown
    severity (or a floor the platform does not have) is never at least anything."""
    order = SEVERITY_ORDER[platform]
    value, bar = (severity or "").strip().lower(), floor.strip().lower()
    if value not in order or bar not in order:
        return False
    return order.index(value) >= order.index(bar)
