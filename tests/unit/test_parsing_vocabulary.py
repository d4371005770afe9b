"""The parser of the status verbs: Datadog mute options, reopen reasons, ack, tags, detach."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from bot.errors import UsageError
from bot.models import Platform, Target, Verb
from bot.rules import check_expiry, parse_expiry
from bot.slack.commands import Command, help_text, parse_command

DD_ID = "ZGVmLTAwcC1pZXJ-aS0wZjhjNjMyZDNmMzRlZTgzNw=="
DD = Target(platform=Platform.DATADOG, id=DD_ID)
KB = Target(platform=Platform.KIBANA, id="k1", space="soc")
XP = Target(platform=Platform.XPANSE, id="77")
NOW = int(datetime(2026, 12, 1, tzinfo=UTC).timestamp() * 1000)
DAY = 86_400_000


def parse(text: str) -> Command:
    return parse_command(text, actor_id="U1")


def test_resolve_datadog_with_reason_duration_and_description() -> None:
    """`for 30d` becomes an expiry 30 days ahead; the text after `--` is the description."""
    cmd = parse(f"resolve dd:{DD_ID} reason Risk_Accepted for 30d -- fix in Q3")
    assert (cmd.verb, cmd.targets, cmd.reason, cmd.comment) == (Verb.RESOLVE, (DD,), "risk_accepted", "fix in Q3")
    assert cmd.expire_at is not None and abs(cmd.expire_at - (datetime.now(UTC).timestamp() * 1000 + 30 * DAY)) < 5000


def test_expiry_options_in_any_order_with_the_reason() -> None:
    """`until <date>` may come before or after `reason`."""
    a = parse(f"resolve dd:{DD_ID} until 2099-01-31 reason duplicate")
    b = parse(f"resolve dd:{DD_ID} reason duplicate until 2099-01-31")
    assert a == b and a.expire_at == int(datetime(2099, 2, 1, tzinfo=UTC).timestamp() * 1000) - 1


def test_mixed_platform_resolve_keeps_every_target() -> None:
    """Datadog with Kibana, and Datadog with Xpanse, in one resolve, with a reason both accept."""
    cmd = parse(f"resolve dd:{DD_ID} kibana:soc/k1 reason false_positive")
    assert cmd.targets == (DD, KB) and cmd.reason == "false_positive"
    cmd = parse(f"resolve xpanse:77 dd:{DD_ID} reason risk_accepted for 1w")
    assert cmd.targets == (XP, DD) and cmd.expire_at is not None
    with pytest.raises(UsageError, match="not a Xpanse reason"):
        parse(f"resolve dd:{DD_ID} xpanse:77 reason duplicate")


def test_reopen_ack_tag_detach() -> None:
    """Each new verb parses to its Command."""
    assert parse(f"reopen dd:{DD_ID} reason no_pending_fix -- fixed") == Command(
        verb=Verb.REOPEN, targets=(DD,), reason="no_pending_fix", comment="fixed"
    )
    assert parse("reopen kibana:soc/k1 xpanse:77") == Command(verb=Verb.REOPEN, targets=(KB, XP))
    assert parse("ack kibana:soc/k1") == Command(verb=Verb.ACK, targets=(KB,))
    assert parse("tag kibana:soc/k1 +triaged -noise +triaged") == Command(
        verb=Verb.TAG, targets=(KB,), tags_add=("triaged",), tags_remove=("noise",)
    )
    assert parse(f"detach dd:{DD_ID}") == Command(verb=Verb.DETACH, targets=(DD,))


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (f"resolve dd:{DD_ID}", "needs a reason: add `reason <reason>` with one of `false_positive`"),
        (f"resolve dd:{DD_ID} reason resolved", "`resolved` is not a Datadog reason"),
        (f"resolve dd:{DD_ID} reason other for ever", "`for ever` is not a duration"),
        (f"resolve dd:{DD_ID} reason other for 30d until 2099-01-01", "Give one expiry"),
        (f"resolve dd:{DD_ID} reason other until 31/01/2099", "is not a date"),
        (f"resolve dd:{DD_ID} reason other until 2020-01-31", "`until 2020-01-31` is in the past"),
        (f"resolve dd:{DD_ID} reason other -- {'x' * 281}", "at most 280 characters; yours has 281"),
        ("resolve kibana:k1 for 30d", "for Datadog mutes only"),
        (f"reopen dd:{DD_ID} reason false_positive", "`false_positive` is not a Datadog reason"),
        ("reopen kibana:k1 reason human_error", "Only Datadog items take a reason"),
        (f"reopen dd:{DD_ID} -- {'y' * 281}", "at most 280 characters"),
        ("ack dd:abc kibana:k1", "works on Kibana items only; not `dd:abc`"),
        ("tag kibana:k1", "Name at least one tag"),
        ("tag kibana:k1 +a b", "`b` is not a tag change"),
        ('tag kibana:k1 "+a b"', "not a tag"),
        ("tag kibana:k1 +a -a", "cannot be added and removed at once: `a`"),
        ("tag xpanse:77 +a", "works on Kibana items only"),
        ("detach kibana:k1", "works on Datadog items only"),
        ("detach from case", "Name the findings only"),
    ],
)
def test_bad_input_names_the_valid_forms(text: str, problem: str) -> None:
    """Each refusal says what is wrong, with the valid forms, and ends with the usage line."""
    with pytest.raises(UsageError) as info:
        parse(text)
    assert problem in info.value.message and "Usage: `/triage " in info.value.message


def test_expiry_rules() -> None:
    """Durations in hours, days and weeks; a date is the end of that day; the past is refused."""
    assert parse_expiry("for", "12h", now_ms=NOW) == NOW + DAY // 2
    assert parse_expiry("for", "2w", now_ms=NOW) == NOW + 14 * DAY
    assert parse_expiry("until", "2026-12-01", now_ms=NOW) == NOW + DAY - 1
    with pytest.raises(UsageError, match="in the past"):
        parse_expiry("until", "2026-11-30", now_ms=NOW)
    with pytest.raises(UsageError, match="in the past"):
        check_expiry(NOW, now_ms=NOW)


def test_help_of_the_new_verbs() -> None:
    """help resolve shows the mute reasons and expiry forms; help reopen the unmute reasons."""
    assert "Datadog reasons: `false_positive`, `risk_accepted`" in help_text(Verb.RESOLVE)
    assert "`for 30d`" in help_text(Verb.RESOLVE)
    assert "`no_pending_fix`, `human_error`, `no_longer_accepted_risk`, `other`" in help_text(Verb.REOPEN)
    assert "`/triage tag kibana:8a3f2c +triaged -noise`" in help_text(Verb.TAG)
