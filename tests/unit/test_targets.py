"""The target grammar (bot.targets): prefixes, spaces, platform links, extraction from
messages, and targets carried in Slack button and modal state (bot.slack.metadata)."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from bot.errors import UsageError
from bot.models import Platform, Target, Verb
from bot.slack.commands import Command, parse_command, usage
from bot.slack.metadata import CardRef, HandoffRef, ModalMeta
from bot.targets import extract_targets, parse_target, target_from_link

PAYLOADS = Path(__file__).resolve().parents[3] / "shared" / "slack" / "payloads"
DD_ID = "ZGVmLTAwcC1pZXJ-aS0wZjhjNjMyZDNmMzRlZTgzNw=="
ODD_DD_ID = "a+b/c=d~e-f_g=="
ACTOR = "UACTOR1"


def dd(item_id: str = DD_ID) -> Target:
    return Target(platform=Platform.DATADOG, id=item_id)


def kb(item_id: str, space: str | None = None) -> Target:
    return Target(platform=Platform.KIBANA, id=item_id, space=space)


def xp(item_id: str) -> Target:
    return Target(platform=Platform.XPANSE, id=item_id)


def parse(text: str, **kwargs: str) -> Command:
    return parse_command(text, actor_id=ACTOR, **kwargs)


def usage_error(text: str, **kwargs: str) -> UsageError:
    with pytest.raises(UsageError) as info:
        parse(text, **kwargs)
    return info.value


# ---------------------------------------------------------------- targets


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (f"dd:{DD_ID}", dd()),
        (f"datadog:{DD_ID}", dd()),
        (f"DD:{ODD_DD_ID}", dd(ODD_DD_ID)),
        ("kibana:8a3f2c", kb("8a3f2c")),
        ("kibana:soc/8a3f2c", kb("8a3f2c", "soc")),
        ("kibana:default/8a3f2c", kb("8a3f2c")),  # the default space is stored as None
        ("Kibana:sec-ops_2/a.b:c-d", kb("a.b:c-d", "sec-ops_2")),
        ("xpanse:5471", xp("5471")),
    ],
)
def test_target_forms(text: str, expected: Target) -> None:
    """Every prefix form parses to the right platform, id and space."""
    assert parse_target(text) == expected
    assert parse(f"show {text}").targets == (expected,)


def test_datadog_slash_is_part_of_the_id() -> None:
    """A `/` in a Datadog id is part of the id, never a space separator."""
    assert parse_target("dd:abc/def") == dd("abc/def")


def test_default_space_is_normalised_to_none() -> None:
    """An explicit space equal to the configured default is stored as None."""
    assert parse("show kibana:soc/a", default_space="soc").targets == (kb("a"),)
    assert parse("show kibana:default/a", default_space="soc").targets == (kb("a", "default"),)


def test_duplicates_removed_in_order() -> None:
    """The same target named twice (in two spellings) is acted on once."""
    cmd = parse(f"unassign xpanse:2 dd:{DD_ID} xpanse:2 datadog:{DD_ID} kibana:default/k kibana:k")
    assert cmd.targets == (xp("2"), dd(), kb("k"))


def test_key_round_trips_through_parse_target() -> None:
    """Target.key parses back to the same target with default_space=None."""
    for target in (dd(ODD_DD_ID), kb("a"), kb("a", "default"), kb("a", "soc"), xp("9")):
        assert parse_target(target.key, default_space=None) == target


# ---------------------------------------------------------------- links


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        # Datadog: finding id in the query (percent-encoded or raw +), or in the path.
        ("https://app.datadoghq.com/security/compliance?query=x&finding_id=ab%2Bc%2Fd%3D%3D", dd("ab+c/d==")),
        ("https://app.datadoghq.com/security?findingId=ab+c==", dd("ab+c==")),
        ("https://app.datadoghq.eu/security/findings?finding=" + DD_ID, dd()),
        ("https://us3.datadoghq.com/security/csm/findings/" + DD_ID, dd()),
        ("https://myorg.ddog-gov.com/security/findings/abc%2Fdef", dd("abc/def")),
        # Kibana: redirect links, spaces, base paths, flyout state, query ids.
        ("https://kibana.example.com/app/security/alerts/redirect/abc123?index=.alerts&timestamp=1", kb("abc123")),
        ("https://kibana.example.com/s/soc/app/security/alerts/redirect/abc123", kb("abc123", "soc")),
        ("https://example.com/kibana/s/soc/app/security/alerts/redirect/abc123/", kb("abc123", "soc")),
        (
            "https://kibana.example.com/s/soc/app/security/alerts?_a=(x:1)&flyout=(right:(id:document-details-right,"
            "params:(id:'a1b2c3',indexName:.internal.alerts-security.alerts-soc-000001,scopeId:alerts-page)))",
            kb("a1b2c3", "soc"),
        ),
        ("https://kibana.example.com/app/security/alerts?alertId=z9", kb("z9")),
        # Xpanse: the contract's xdr_url, and /incidents/<id>.
        ("https://exp-test.crtx.eu.paloaltonetworks.com/incident-view?caseId=5471", xp("5471")),
        ("https://tenant.xpanse.example/incidents/42", xp("42")),
        ("https://tenant.crtx.us.paloaltonetworks.com/incident-view/77", xp("77")),
    ],
)
def test_link_forms(url: str, expected: Target) -> None:
    """Each documented link form yields its target, bare, Slack-wrapped or labelled."""
    assert target_from_link(url) == expected
    escaped = url.replace("&", "&amp;")  # Slack escapes & inside message text
    for text in (url, f"<{escaped}>", f"<{escaped}|the alert>"):
        assert parse(f"show {text}").targets == (expected,)


@pytest.mark.parametrize(
    "url",
    [
        "https://app.datadoghq.com/security/signals?query=x",  # no finding id
        "https://datadoghq.com.evil.example/security/findings/abc",  # not a Datadog site
        "https://kibana.example.com/app/security/rules",
        "https://example.com/incidents/P1ABCD",  # not a numeric incident id
        "https://kibana.example.com/app/security/alerts/redirect/bad%20id",
        "ftp://app.datadoghq.com/security/findings/abc",
        "not a url",
    ],
)
def test_unreadable_links(url: str) -> None:
    """Links that do not name an item are not targets."""
    assert target_from_link(url) is None


def test_unreadable_link_as_target_is_a_usage_error() -> None:
    """A link without an id in a command gets a message saying so, with the usage line."""
    err = usage_error("show <https://app.datadoghq.com/security/signals?q=1>")
    assert "Can't find a Datadog finding" in err.message and usage(Verb.SHOW) in err.message


def test_datadog_path_on_other_host_is_not_datadog() -> None:
    """A findings path on a non-Datadog host is not read as a Datadog finding."""
    assert target_from_link("https://evil.example.com/security/findings/abc") is None


# ---------------------------------------------------------------- extract_targets


def test_extract_from_text() -> None:
    """Prefix words and links in message text are found, in order, de-duplicated."""
    text = (
        f"New findings: dd:{DD_ID}, kibana:soc/abc and `xpanse:12`. "
        "See <https://exp-test.crtx.eu.paloaltonetworks.com/incident-view?caseId=12|incident> "
        f"and https://app.datadoghq.com/security?finding_id={DD_ID}&amp;x=1."
    )
    assert extract_targets(text) == [dd(), kb("abc", "soc"), xp("12")]


def test_extract_ignores_invalid_and_prose() -> None:
    """Text that only looks like a target is ignored, never an error."""
    text = "Datadog: down. kibana: later. xpanse:abc odd:1 https://example.com/x <@U1> <#C1|x>"
    assert extract_targets(text) == []


def test_extract_from_message_action_payload_blocks() -> None:
    """Targets are read from every text and url nested in a real message's blocks."""
    payload = json.loads((PAYLOADS / "message_action.json").read_text())
    message = payload["message"]
    assert extract_targets(message["text"], message["blocks"]) == []
    blocks = copy.deepcopy(message["blocks"])
    section = blocks[0]["elements"][0]["elements"]
    section.append({"type": "text", "text": " xpanse:5471 and kibana:k1"})
    section.append(
        {
            "type": "link",
            "url": "https://kibana.example.com/s/soc/app/security/alerts/redirect/k2",
            "text": "alert",
        }
    )
    blocks.append(
        {
            "type": "section",
            "text": {"type": "mrkdwn", "text": f"finding <https://app.datadoghq.com/security/findings/{DD_ID}|here>"},
            "accessory": {
                "type": "button",
                "text": {"type": "plain_text", "text": "x"},
                "url": "https://tenant.example/incidents/5471",
            },
        }
    )
    assert extract_targets(message["text"], blocks) == [xp("5471"), kb("k1"), kb("k2", "soc"), dd()]


def test_extract_from_attachments_and_default_space() -> None:
    """Attachments are read too; a link without /s/ is the `default` space."""
    attachments = [
        {
            "fallback": "x",
            "title_link": "https://k.example/app/security/alerts/redirect/a1",
            "fields": [{"title": "id", "value": "dd:zz"}],
        }
    ]
    assert extract_targets("", None, attachments=attachments) == [kb("a1"), dd("zz")]
    found = extract_targets("", None, attachments=attachments, default_space="soc")
    assert found == [kb("a1", "default"), dd("zz")]


# ---------------------------------------------------------------- metadata


def test_card_ref_round_trip_is_compact() -> None:
    """CardRef survives dumps/loads and keeps Kibana spaces exactly."""
    for target in (dd(ODD_DD_ID), kb("a"), kb("a", "default"), kb("a", "soc"), xp("1")):
        ref = CardRef(target=target, channel="C1", ts="1.2", thread_ts="1.1")
        raw = ref.dumps()
        assert CardRef.loads(raw) == ref
        assert len(raw) < 100
    assert CardRef.loads(CardRef(target=xp("1")).dumps()).channel is None


def test_modal_meta_and_handoff_ref_round_trip() -> None:
    """ModalMeta and HandoffRef survive dumps/loads."""
    meta = ModalMeta(verb=Verb.RESOLVE, targets=(kb("a", "soc"), xp("2")), channel="C1", ts="1.2")
    assert ModalMeta.loads(meta.dumps()) == meta
    ref = HandoffRef(id="job-123")
    assert HandoffRef.loads(ref.dumps()) == ref


def test_metadata_length_limits() -> None:
    """dumps refuses values over Slack's limit (2,000 for buttons, 3,000 for metadata)."""
    many = tuple(dd(f"{i:0>60}") for i in range(60))
    with pytest.raises(ValueError, match="Slack allows 3000"):
        ModalMeta(verb=Verb.ASSIGN, targets=many).dumps()
    assert len(ModalMeta(verb=Verb.ASSIGN, targets=many[:40]).dumps()) <= 3000
    with pytest.raises(ValueError, match="Slack allows 2000"):
        CardRef(target=dd("a" * 1990)).dumps()
    with pytest.raises(ValueError):
        CardRef.loads("x" * 2001)


@pytest.mark.parametrize("raw", ["", "{}", "not json", '{"t":"foo:1"}', '{"t":"xpanse:1","zz":1}'])
def test_metadata_loads_rejects_garbage(raw: str) -> None:
    """loads raises ValueError for anything dumps did not write."""
    with pytest.raises(ValueError):
        CardRef.loads(raw)
