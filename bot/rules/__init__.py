"""Per-platform facts, in one place: id, space, uid, email and case formats, reasons,
severities and capabilities.

Pure: no I/O, and nothing from the bot but ``bot.models`` and ``bot.errors``. The
``/triage`` parser, the Block Kit builders, the platform clients and the mapping store
all read these, so an input one of them accepts is never refused by another.

Every ``normalise_*`` function returns the canonical form of its input or raises
``UsageError`` with a sentence saying what shape was expected. The sources are the
contracts and their notes in ``shared/contracts`` and the recordings in ``shared/real``.
"""

from __future__ import annotations

import re
from typing import Literal

from bot.errors import UsageError
from bot.models import Platform, Verb
from bot.rules.vocabulary import (
    CAPABILITIES,
    DATADOG_DESCRIPTION_MAX,
    DATADOG_DETACH_MAX,
    DATADOG_MUTE_MAX,
    DATADOG_MUTE_REASONS,
    DATADOG_UNMUTE_REASONS,
    EXPIRY_FORMS,
    REOPEN_REASONS,
    TAG_FORMS,
    XPANSE_REOPEN_STATUS,
    Capabilities,
    check_description,
    check_expiry,
    check_tags,
    normalise_mute_reason,
    normalise_tag,
    parse_expiry,
    platforms_for,
    supports,
)

__all__ = [
    "CAPABILITIES",
    "DATADOG_ATTACH_MAX",
    "DATADOG_DESCRIPTION_MAX",
    "DATADOG_DETACH_MAX",
    "DATADOG_MUTE_MAX",
    "DATADOG_MUTE_REASONS",
    "DATADOG_SITES",
    "DATADOG_UNMUTE_REASONS",
    "DEFAULT_KIBANA_SPACE",
    "EXPIRY_FORMS",
    "IDENTITY_EXAMPLE",
    "IDENTITY_NOUN",
    "KIBANA_CLOSE_REASONS",
    "KIBANA_OPEN_STATUSES",
    "REOPEN_REASONS",
    "RESOLVE_REASONS",
    "SEVERITIES",
    "TAG_FORMS",
    "XPANSE_CLOSED_STATUSES",
    "XPANSE_REOPEN_STATUS",
    "XPANSE_RESOLVED",
    "XPANSE_RESOLVE_REASONS",
    "XPANSE_SEVERITIES",
    "Capabilities",
    "DatadogSite",
    "app_host",
    "check_description",
    "check_expiry",
    "check_tags",
    "is_case_ref",
    "is_datadog_host",
    "is_uuid",
    "normalise_case",
    "normalise_datadog_finding_id",
    "normalise_datadog_user_id",
    "normalise_email",
    "normalise_identity",
    "normalise_item_id",
    "normalise_kibana_alert_id",
    "normalise_kibana_reason",
    "normalise_kibana_space",
    "normalise_kibana_uid",
    "normalise_mute_reason",
    "normalise_reason",
    "normalise_severity",
    "normalise_tag",
    "normalise_xpanse_incident_id",
    "parse_expiry",
    "platforms_for",
    "supports",
    "xpanse_resolve_status",
]

# ---------------------------------------------------------------- Datadog

# The contract's site enum (NOTES §1: uk1 was missing from the design doc).
DatadogSite = Literal[
    "datadoghq.com",
    "us3.datadoghq.com",
    "us5.datadoghq.com",
    "ap1.datadoghq.com",
    "ap2.datadoghq.com",
    "uk1.datadoghq.com",
    "datadoghq.eu",
    "ddog-gov.com",
    "us2.ddog-gov.com",
]
DATADOG_SITES: tuple[str, ...] = DatadogSite.__args__  # type: ignore[attr-defined]

# Findings one AttachCase request may carry (the endpoint description; no maxItems).
DATADOG_ATTACH_MAX = 50
DATADOG_FINDING_ID_MAX = 512

_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.IGNORECASE)
# Finding ids are base64 / base64url text, e.g. ZGVmLTAwcC1pZXJ-aS0wZjhjNjMyZDNmMzRlZTgzNw==;
# a "/" in one is part of the id, never a separator.
_FINDING_ID = re.compile(r"^[A-Za-z0-9+/=_~-]+$")
# Case keys are PROJECT-NUMBER, e.g. SEC-123 or CSMINV-459.
_CASE_KEY = re.compile(r"^[A-Za-z][A-Za-z0-9_]*-[0-9]+$")


def is_uuid(value: str) -> bool:
    """Whether ``value`` is a canonical UUID (the form of Datadog user and case ids)."""
    return bool(_UUID.match(value))


def is_datadog_host(host: str) -> bool:
    """Whether ``host`` is a Datadog site or a subdomain of one (``app.datadoghq.com``)."""
    return any(host == site or host.endswith("." + site) for site in DATADOG_SITES)


def app_host(site: str) -> str:
    """The web app host for a Datadog site (``datadoghq.com`` → ``app.datadoghq.com``).

    Regional sites with their own prefix (``us3.datadoghq.com``, ``us2.ddog-gov.com``) serve
    the app on the site name itself; the bare ones (datadoghq.com, datadoghq.eu,
    ddog-gov.com) serve it on ``app.<site>``, as the vendor's per-site endpoint table shows.
    """
    return site if site.count(".") >= 2 else f"app.{site}"


def normalise_datadog_finding_id(item_id: str) -> str:
    """The finding id stripped; ``UsageError`` unless it is base64 text of at most 512 characters."""
    value = (item_id or "").strip()
    if not value:
        raise UsageError("A Datadog finding id is empty; paste the id from the finding's page.")
    if any(ch.isspace() for ch in value):
        raise UsageError(f"A Datadog finding id cannot contain spaces: {value[:60]!r}.")
    if len(value) > DATADOG_FINDING_ID_MAX:
        raise UsageError(f"That Datadog finding id is too long ({len(value)} characters).")
    if not _FINDING_ID.match(value):
        raise UsageError(
            f"{value[:60]!r} is not a Datadog finding id: finding ids are base64 text such as "
            "ZGVmLTAwcC1pZXJ-aS0wZjhjNjMyZDNmMzRlZTgzNw== (letters, digits, + / = ~ - _)."
        )
    return value


def normalise_datadog_user_id(user_id: str, *, verb: Verb | None = Verb.MAP) -> str:
    """A Datadog user id (a UUID) in lower case; ``UsageError`` for anything else."""
    value = (user_id or "").strip()
    if not is_uuid(value):
        raise UsageError(
            f"{value[:60]!r} is not a Datadog user id: expected the user's UUID "
            "(e.g. f315bdaf-9ee7-4808-a9c1-99c15bf0f4d0, shown in Organization Settings → Users).",
            verb=verb,
        )
    return value.lower()


def is_case_ref(value: str) -> bool:
    """Whether ``value`` reads as a Datadog case: a UUID or a key like ``SEC-123``."""
    return is_uuid(value) or bool(_CASE_KEY.match(value))


def normalise_case(case: str) -> str:
    """A Datadog case reference: a UUID in lower case or a key in upper case; ``UsageError`` else."""
    value = (case or "").strip()
    if is_uuid(value):
        return value.lower()
    if _CASE_KEY.match(value):
        return value.upper()
    raise UsageError(
        f"{value[:60]!r} is not a Datadog case: give its key (e.g. SEC-123) or its UUID.",
        verb=Verb.ATTACH,
    )


# ---------------------------------------------------------------- Kibana

# No /s/<space> in a Kibana path means the space with this id.
DEFAULT_KIBANA_SPACE = "default"
# Kibana's default closing reasons (DefaultClosingReasonSchema; the contract's older enum is
# refused by current Kibana). A space can add custom ones (advanced setting), so any other
# 1-1024 character reason is sent as given and Kibana's 400 "<reason> is an invalid closing
# reason." reported when it is not one of them.
KIBANA_CLOSE_REASONS: tuple[str, ...] = (
    "false_positive",
    "duplicate",
    "true_positive",
    "benign_positive",
    "automated_closure",
    "other",
)
KIBANA_REASON_MAX = 1024
# Workflow statuses that still need someone ("mine" lists them); closed is the only final one.
KIBANA_OPEN_STATUSES: tuple[str, ...] = ("open", "acknowledged", "in-progress")

_ALERT_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,512}$")
_SPACE = re.compile(r"^[a-z0-9_-]{1,255}$")
# Elasticsearch user profile uids are "u_" + a base64url digest + "_" + a generation
# number: u_79HkWkwmnBH5gqFKwoxggWPjEBOur1zLPXQPEl1VBW0_0 in the contract, u_REDACTED_1 in
# the recordings. Kibana validates none of them (NOTES §2.1), so this checks the shape
# (catching a pasted username or email) and leaves the digest length to Elastic.
_PROFILE_UID = re.compile(r"^u_[A-Za-z0-9_-]+_[0-9]+$")
KIBANA_UID_MAX = 256


def normalise_kibana_alert_id(item_id: str) -> str:
    """The alert ``_id`` stripped; ``UsageError`` unless letters, digits, ``_ . : -`` (≤ 512)."""
    value = (item_id or "").strip()
    if not value:
        raise UsageError("A Kibana alert id is required.")
    if not _ALERT_ID.match(value):
        raise UsageError(
            f"{value[:80]!r} is not a Kibana alert id (letters, digits, '_', '-', '.', ':'; "
            "at most 512 characters, no spaces)."
        )
    return value


def normalise_kibana_space(space: str) -> str:
    """The space id stripped; ``UsageError`` unless it is lowercase a-z, 0-9, ``_`` or ``-``."""
    value = (space or "").strip()
    if not _SPACE.match(value):
        raise UsageError(f"{value[:80]!r} is not a Kibana space id (lowercase a-z, 0-9, '_' and '-').")
    return value


def normalise_kibana_uid(uid: str, *, verb: Verb | None = Verb.MAP) -> str:
    """A Kibana user profile uid stripped; ``UsageError`` unless it is ``u_<base64url>_<n>``."""
    value = (uid or "").strip()
    if len(value) > KIBANA_UID_MAX or not _PROFILE_UID.match(value):
        raise UsageError(
            f"{value[:80]!r} is not a Kibana profile uid: expected u_ followed by letters, digits, "
            "_ or -, ending in _ and a number (e.g. u_79HkWkwmnBH5gqFKwoxggWPjEBOur1zLPXQPEl1VBW0_0).",
            verb=verb,
        )
    return value


def normalise_kibana_reason(reason: str | None) -> str | None:
    """A default close reason for ``reason`` (case, spaces, dashes forgiven), any other reason
    as given (a space's custom reason; Kibana says when it is not one), None for none."""
    if reason is None or not reason.strip():
        return None
    value = re.sub(r"[\s-]+", "_", reason.strip().lower())
    if value in KIBANA_CLOSE_REASONS:
        return value
    if len(reason.strip()) > KIBANA_REASON_MAX:
        raise UsageError(
            f"a Kibana close reason is at most {KIBANA_REASON_MAX} characters; the defaults are: "
            + ", ".join(KIBANA_CLOSE_REASONS),
            verb=Verb.RESOLVE,
        )
    return reason.strip()


# ---------------------------------------------------------------- Xpanse

XPANSE_RESOLVED = "resolved"
# update_incident's status enum (contract): the resolved variants a reason may name.
XPANSE_RESOLVE_REASONS: tuple[str, ...] = (
    "resolved_-_no_longer_observed",
    "resolved_-_no_risk",
    "resolved_-_risk_accepted",
    "resolved_-_contested_asset",
    "resolved_-_remediated_automatically",
)
# Every status that counts as resolved.
XPANSE_CLOSED_STATUSES: tuple[str, ...] = (XPANSE_RESOLVED, *XPANSE_RESOLVE_REASONS)
# The contract lists high, medium and low for manual_severity (from the XDR reference).
XPANSE_SEVERITIES: tuple[str, ...] = ("low", "medium", "high")

_INCIDENT_ID = re.compile(r"^[0-9]{1,20}$")
# Deliberately simple: one @, no spaces, a dot in the domain. The platform is the judge of the rest.
_EMAIL = re.compile(r"^[^@\s<>,;|]+@[^@\s<>,;|]+\.[^@\s<>,;|]+$")
EMAIL_MAX = 320


def normalise_xpanse_incident_id(item_id: str) -> str:
    """The incident id stripped; ``UsageError`` unless it is a number."""
    value = (item_id or "").strip()
    if not _INCIDENT_ID.match(value):
        raise UsageError(f"Xpanse incident ids are numbers (like 5471), not {item_id!r}.")
    return value


def normalise_email(email: str, *, verb: Verb | None = None) -> str:
    """An email address stripped and in lower case (platforms compare them case-insensitively)."""
    value = (email or "").strip()
    if len(value) > EMAIL_MAX or not _EMAIL.match(value):
        raise UsageError(f"{value[:80]!r} is not an email address.", verb=verb)
    return value.lower()


def xpanse_resolve_status(reason: str | None) -> str:
    """The Xpanse status for a resolve reason (enum value or short form such as ``no_risk``)."""
    if reason is None or not reason.strip():
        return XPANSE_RESOLVED
    key = re.sub(r"[\s\-]+", "_", reason.strip().lower())
    key = key.removeprefix("resolved___").removeprefix("resolved_")
    if key in ("", XPANSE_RESOLVED):
        return XPANSE_RESOLVED
    candidate = f"resolved_-_{key}"
    if candidate in XPANSE_RESOLVE_REASONS:
        return candidate
    short = ", ".join(r.removeprefix("resolved_-_") for r in XPANSE_RESOLVE_REASONS)
    raise UsageError(f"unknown Xpanse resolve reason {reason!r}; use one of: {short}", verb=Verb.RESOLVE)


# ---------------------------------------------------------------- per platform


# The reasons each platform accepts for resolving (the first is the modal's default).
RESOLVE_REASONS: dict[Platform, tuple[str, ...]] = {
    Platform.DATADOG: DATADOG_MUTE_REASONS,
    Platform.KIBANA: KIBANA_CLOSE_REASONS,
    Platform.XPANSE: XPANSE_CLOSED_STATUSES,
}
# The manual severities each platform accepts.
SEVERITIES: dict[Platform, tuple[str, ...]] = {Platform.XPANSE: XPANSE_SEVERITIES}

# What an admin types after "platform=" in /triage map, and what the platform calls it.
IDENTITY_EXAMPLE: dict[Platform, str] = {
    Platform.DATADOG: "<user UUID>",
    Platform.KIBANA: "u_…",
    Platform.XPANSE: "<email>",
}
IDENTITY_NOUN: dict[Platform, str] = {
    Platform.DATADOG: "user",
    Platform.KIBANA: "profile",
    Platform.XPANSE: "user",
}


def normalise_item_id(platform: Platform, item_id: str) -> str:
    """The item id normalised for ``platform``; ``UsageError`` if it cannot be one."""
    if platform is Platform.DATADOG:
        return normalise_datadog_finding_id(item_id)
    if platform is Platform.KIBANA:
        return normalise_kibana_alert_id(item_id)
    return normalise_xpanse_incident_id(item_id)


def normalise_identity(platform: Platform, value: str) -> str:
    """A user identity normalised for ``platform`` (Datadog user UUID, Kibana profile uid,
    Xpanse email); ``UsageError`` saying what shape was expected."""
    if platform is Platform.DATADOG:
        return normalise_datadog_user_id(value)
    if platform is Platform.KIBANA:
        return normalise_kibana_uid(value)
    try:
        return normalise_email(value, verb=Verb.MAP)
    except UsageError:
        raise UsageError(
            f"{(value or '').strip()[:80]!r} is not an email address: Xpanse identifies users by their email.",
            verb=Verb.MAP,
        ) from None


def normalise_reason(platform: Platform, reason: str | None) -> str | None:
    """The platform's own resolve reason for ``reason``; ``UsageError`` when it has none such."""
    if platform is Platform.KIBANA:
        return normalise_kibana_reason(reason)
    if platform is Platform.XPANSE:
        return xpanse_resolve_status(reason)
    return normalise_mute_reason(reason)


def normalise_severity(platform: Platform, severity: str) -> str:
    """A manual severity of ``platform`` in lower case; ``UsageError`` for others."""
    allowed = SEVERITIES.get(platform)
    if not allowed:
        raise UsageError(f"severity can be set on Xpanse incidents only, not on {platform.label} items")
    value = (severity or "").strip().lower()
    if value not in allowed:
        raise UsageError(
            f"unknown {platform.label} severity {severity!r}; use one of: {', '.join(allowed)}",
            verb=Verb.SEVERITY,
        )
    return value
