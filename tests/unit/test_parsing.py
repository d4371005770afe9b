"""The /triage parser, help and usage errors, and the identity rules it shares with the store."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bot.errors import UsageError
from bot.models import Platform, Target, Verb
from bot.rules import RESOLVE_REASONS, normalise_kibana_uid
from bot.slack.commands import (
    GRAMMAR,
    Command,
    help_text,
    parse_command,
    slack_to_plain,
    usage,
)
from bot.store.mappings import validate_identity

PAYLOADS = Path(__file__).resolve().parents[3] / "shared" / "slack" / "payloads"
DD_ID = "ZGVmLTAwcC1pZXJ-aS0wZjhjNjMyZDNmMzRlZTgzNw=="
ODD_DD_ID = "a+b/c=d~e-f_g=="
UUID = "f315bdaf-9ee7-4808-a9c1-99c15bf0f4d0"
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


# ---------------------------------------------------------------- every verb


def test_empty_text_is_help() -> None:
    """An empty or blank command asks for the whole help."""
    assert parse("") == Command(verb=Verb.HELP)
    assert parse("   \n ") == Command(verb=Verb.HELP)


def test_assign_to_mention_with_mixed_platforms() -> None:
    """assign takes targets on several platforms, an optional `to`, and a mention."""
    cmd = parse(f"assign dd:{DD_ID} kibana:abc123 xpanse:5471 to <@U123ABC|alice>")
    assert cmd.verb is Verb.ASSIGN
    assert cmd.targets == (dd(), kb("abc123"), xp("5471"))
    assert cmd.user == "U123ABC"


def test_assign_me_without_to() -> None:
    """`me` is the actor, and `to` is optional."""
    cmd = parse("assign xpanse:1 me")
    assert cmd.user == ACTOR and cmd.targets == (xp("1"),)


def test_assign_plain_mention_and_enterprise_user() -> None:
    """`<@U…>` without a label and Enterprise Grid `W…` ids are mentions."""
    assert parse("assign xpanse:1 <@U0AB>").user == "U0AB"
    assert parse("assign xpanse:1 to <@W111|ent>").user == "W111"


def test_unassign() -> None:
    """unassign takes one or more targets, separated by spaces or commas."""
    cmd = parse("unassign xpanse:1,xpanse:2 kibana:a")
    assert cmd == Command(verb=Verb.UNASSIGN, targets=(xp("1"), xp("2"), kb("a")))


def test_attach_with_key_and_uuid() -> None:
    """attach takes Datadog targets and a case key (upper-cased) or UUID (lower-cased)."""
    cmd = parse(f"attach dd:{DD_ID} datadog:{ODD_DD_ID} to case sec-123")
    assert cmd.targets == (dd(), dd(ODD_DD_ID)) and cmd.case == "SEC-123"
    assert parse(f"attach dd:x case {UUID.upper()}").case == UUID


def test_attach_without_case_keyword_accepts_a_case_key() -> None:
    """A trailing case key is read as the case even without the `case` keyword."""
    assert parse("attach dd:x to SEC-9").case == "SEC-9"


def test_resolve_with_reason_and_comment() -> None:
    """resolve reads `reason <word>` and everything after `--` as the comment."""
    cmd = parse(
        "resolve kibana:a kibana:b reason false_positive -- scanner noise, see <https://x.example/y|ticket> &amp; more"
    )
    assert cmd.targets == (kb("a"), kb("b"))
    assert cmd.reason == "false_positive"
    assert cmd.comment == "scanner noise, see ticket (https://x.example/y) & more"


def test_resolve_accepts_em_dash_and_no_reason() -> None:
    """Slack clients turn `--` into a dash; both work, and the reason is optional."""
    cmd = parse("resolve xpanse:5 — owner fixed it")
    assert cmd.reason is None and cmd.comment == "owner fixed it"
    assert parse("resolve xpanse:5").comment is None


def test_resolve_xpanse_reason() -> None:
    """Xpanse resolve reasons are the resolved_* statuses of the contract."""
    assert parse("resolve xpanse:5 reason resolved_-_no_risk").reason == "resolved_-_no_risk"


def test_comment_quoted_and_unquoted() -> None:
    """comment text may be quoted (straight or smart quotes) or the rest of the line."""
    assert parse('comment xpanse:5471 "owner contacted, fix Friday"').text == "owner contacted, fix Friday"
    assert parse("comment xpanse:5471 “smart quotes”").text == "smart quotes"
    cmd = parse("comment xpanse:5471 asked <@U1|bob> about &lt;host&gt;")
    assert cmd.targets == (xp("5471"),) and cmd.text == "asked @bob about <host>"


def test_severity() -> None:
    """severity takes one Xpanse target and a level, case-insensitively."""
    cmd = parse("severity xpanse:7 HIGH")
    assert cmd == Command(verb=Verb.SEVERITY, targets=(xp("7"),), severity="high")
    assert parse("severity xpanse:7 high").severity == "high"


@pytest.mark.parametrize("verb", [Verb.SHOW, Verb.HISTORY])
def test_show_and_history(verb: Verb) -> None:
    """show and history take exactly one target."""
    assert parse(f"{verb} kibana:soc/abc") == Command(verb=verb, targets=(kb("abc", "soc"),))


def test_handoff_forms() -> None:
    """handoff defaults `from` to the actor, and accepts `me` on either side."""
    assert parse("handoff to <@U2>") == Command(verb=Verb.HANDOFF, user="U2", from_user=ACTOR)
    assert parse("handoff <@U1|a> to <@U2|b>") == Command(verb=Verb.HANDOFF, user="U2", from_user="U1")
    assert parse("handoff <@U1> to me") == Command(verb=Verb.HANDOFF, user=ACTOR, from_user="U1")
    assert parse("handoff <@U1> <@U2>").from_user == "U1"


@pytest.mark.parametrize("verb", [Verb.MINE, Verb.WHOAMI])
def test_mine_and_whoami_default_to_actor(verb: Verb) -> None:
    """mine and whoami are about the actor unless someone is named."""
    assert parse(str(verb)) == Command(verb=verb, user=ACTOR)
    assert parse(f"{verb} <@U9|x>") == Command(verb=verb, user="U9")


def test_map_with_every_identity() -> None:
    """map reads platform=value pairs, unwrapping Slack's mailto links."""
    cmd = parse(f"map <@U1> datadog={UUID} kibana=u_alice_0 xpanse=<mailto:Alice@Example.com|Alice@Example.com>")
    assert cmd.user == "U1"
    assert cmd.identities == {
        Platform.DATADOG: UUID,
        Platform.KIBANA: "u_alice_0",
        Platform.XPANSE: "alice@example.com",
    }
    assert parse("map <@U1>").identities == {}
    assert parse("map <@U1> dd=" + UUID).identities == {Platform.DATADOG: UUID}


def test_unmap() -> None:
    """unmap names a user and a platform (aliases accepted)."""
    assert parse("unmap <@U1> kibana") == Command(verb=Verb.UNMAP, user="U1", platform=Platform.KIBANA)
    assert parse("unmap <@U1> DD").platform is Platform.DATADOG


def test_help_for_a_verb() -> None:
    """`help <verb>` names the verb; plain `help` does not."""
    assert parse("help resolve") == Command(verb=Verb.HELP, help_verb=Verb.RESOLVE)
    assert parse("HELP") == Command(verb=Verb.HELP)


def test_verbs_are_case_insensitive() -> None:
    """Verbs and keywords are matched regardless of case."""
    assert parse("Assign xpanse:1 TO me").verb is Verb.ASSIGN


# ---------------------------------------------------------------- usage errors


@pytest.mark.parametrize(
    ("text", "verb", "problem"),
    [
        ("assign xpanse:1", Verb.ASSIGN, "Missing user"),
        ("assign xpanse:1 to", Verb.ASSIGN, "Missing user"),
        ("assign me", Verb.ASSIGN, "Missing targets"),
        ("assign", Verb.ASSIGN, "Missing targets and user"),
        ("assign xpanse:1 @bob", Verb.ASSIGN, "`@bob` is not a Slack mention"),
        ("unassign", Verb.UNASSIGN, "Missing targets"),
        ("unassign 12345", Verb.UNASSIGN, "`12345` is not a target"),
        ("unassign splunk:1", Verb.UNASSIGN, "`splunk:` is not a platform prefix"),
        ("unassign dd:", Verb.UNASSIGN, "has no id"),
        ("unassign xpanse:abc", Verb.UNASSIGN, "Xpanse incident ids are numbers"),
        ("unassign dd:a!b", Verb.UNASSIGN, "not a Datadog finding id"),
        ("unassign kibana:SOC/a", Verb.UNASSIGN, "not a Kibana space id"),
        ("unassign kibana:soc/a/b", Verb.UNASSIGN, "not a Kibana alert id"),
        ("attach kibana:a case SEC-1", Verb.ATTACH, "Only Datadog findings can be attached"),
        ("attach dd:a xpanse:1 to case SEC-1", Verb.ATTACH, "not `xpanse:1`"),
        ("attach dd:a", Verb.ATTACH, "Missing the case"),
        ("attach dd:a case", Verb.ATTACH, "Missing the case after `case`"),
        ("attach dd:a case banana", Verb.ATTACH, "'banana' is not a Datadog case"),
        ("attach case SEC-1", Verb.ATTACH, "Missing targets"),
        ("resolve kibana:a reason " + "x" * 1025, Verb.RESOLVE, "is not a Kibana reason"),  # free, 1-1024 chars
        ("resolve xpanse:1 reason false_positive", Verb.RESOLVE, "not a Xpanse reason"),
        ("resolve kibana:a reason", Verb.RESOLVE, "Missing the reason"),
        ("resolve kibana:a reason two words", Verb.RESOLVE, "The reason is one word"),
        ("resolve kibana:a --", Verb.RESOLVE, "Nothing after `--`"),
        ("resolve -- why", Verb.RESOLVE, "Missing targets"),
        ("comment dd:a hello", Verb.COMMENT, "works on Xpanse incidents only"),
        ("comment kibana:a hello", Verb.COMMENT, "`kibana:a` is a Kibana item"),
        ("comment xpanse:1", Verb.COMMENT, "Missing the comment text"),
        ("comment", Verb.COMMENT, "Missing the Xpanse incident"),
        ("severity xpanse:1 extreme", Verb.SEVERITY, "`extreme` is not a severity"),
        ("severity xpanse:1", Verb.SEVERITY, "Missing the severity"),
        ("severity dd:a high", Verb.SEVERITY, "works on Xpanse incidents only"),
        ("severity xpanse:1 high now", Verb.SEVERITY, "one incident and one severity"),
        ("show", Verb.SHOW, "Missing target"),
        ("show xpanse:1 xpanse:2", Verb.SHOW, "takes one target; got 2"),
        ("history", Verb.HISTORY, "Missing target"),
        ("handoff", Verb.HANDOFF, "Missing the person to hand off to"),
        ("handoff <@U1> to", Verb.HANDOFF, "Missing the person to hand off to"),
        ("handoff to me", Verb.HANDOFF, "are the same"),
        ("handoff to bob", Verb.HANDOFF, "Expected the person to hand off to"),
        ("mine <@U1> <@U2>", Verb.MINE, "at most one person"),
        ("whoami bob", Verb.WHOAMI, "Expected the user"),
        ("map", Verb.MAP, "Missing the user"),
        ("map <@U1> datadog=nope", Verb.MAP, "'nope' is not a Datadog user id"),
        ("map <@U1> xpanse=nope", Verb.MAP, "not an email address"),
        ("map <@U1> kibana=a/b", Verb.MAP, "'a/b' is not a Kibana profile uid"),
        ("map <@U1> splunk=x", Verb.MAP, "`splunk` is not a platform"),
        ("map <@U1> xpanse", Verb.MAP, "Expected `platform=value`"),
        ("map <@U1> xpanse=", Verb.MAP, "Missing the value"),
        ("map <@U1> xpanse=a@b.co xpanse=c@d.co", Verb.MAP, "given twice"),
        ("unmap <@U1>", Verb.UNMAP, "Name the user and one platform"),
        ("unmap <@U1> splunk", Verb.UNMAP, "`splunk` is not a platform"),
        ("help a b", Verb.HELP, "one command at a time"),
    ],
)
def test_usage_errors(text: str, verb: Verb, problem: str) -> None:
    """Each malformed command names its problem, its verb and its usage line."""
    err = usage_error(text)
    assert problem in err.message
    assert err.verb == verb
    assert f"Usage: `{usage(verb)}`" in err.message


def test_unknown_verb_lists_verbs_and_suggests() -> None:
    """An unknown verb lists every verb, suggests a close one, and has no verb."""
    err = usage_error("asign xpanse:1 me")
    assert err.verb is None
    assert "Unknown command `asign`" in err.message and "Did you mean `assign`?" in err.message
    for spec in GRAMMAR:
        assert f"`{spec.verb}`" in err.message
    assert "Did you mean" not in usage_error("zzzz").message


def test_help_unknown_verb() -> None:
    """`help <unknown>` is an unknown-verb error."""
    assert "Unknown command `frobnicate`" in usage_error("help frobnicate").message


def test_refresh_is_not_a_command() -> None:
    """refresh is a button only; typing it is an unknown command."""
    assert usage_error("refresh xpanse:1").verb is None


def test_reason_checked_against_each_platform_present() -> None:
    """A reason must be valid for every reason-taking platform among the targets."""
    assert parse("resolve dd:a reason false_positive").reason == "false_positive"
    assert "Xpanse" in usage_error("resolve kibana:a xpanse:1 reason false_positive").message


# ---------------------------------------------------------------- help


def test_help_for_whole_grammar_lists_every_verb() -> None:
    """The whole help shows every verb's usage line and summary, and the target forms."""
    text = help_text(None)
    for spec in GRAMMAR:
        assert spec.usage in text and spec.summary in text
    assert "kibana:<space>/<alert id>" in text


@pytest.mark.parametrize("spec", GRAMMAR, ids=lambda s: s.verb.value)
def test_help_for_each_verb(spec) -> None:  # type: ignore[no-untyped-def]
    """Each verb's help has its usage, summary and examples, and no other verb's usage."""
    text = help_text(spec.verb)
    assert spec.usage in text and spec.summary in text
    for example in spec.examples:
        assert example in text
    for other in GRAMMAR:
        if other is not spec:
            assert other.usage not in text
    if spec.verb is Verb.RESOLVE:
        for reasons in RESOLVE_REASONS.values():
            assert all(reason in text for reason in reasons)


def test_every_verb_has_examples_that_parse() -> None:
    """Every example in the help parses to its verb (with @names as Slack sends them)."""
    for spec in GRAMMAR:
        assert spec.examples, spec.verb
        for example in spec.examples:
            slack_text = re.sub(r"(?<!\S)@(\w+)", lambda m: f"<@U{m.group(1).upper()}|{m.group(1)}>", example)
            assert parse(slack_text).verb is spec.verb, example


def test_grammar_covers_every_command_verb() -> None:
    """Every verb except the button-only refresh and undo is in the grammar exactly once."""
    verbs = [spec.verb for spec in GRAMMAR]
    assert sorted(verbs) == sorted(set(Verb) - {Verb.REFRESH, Verb.UNDO})


def test_help_for_button_only_verb_is_whole_help() -> None:
    """help_text for a verb outside the grammar falls back to the whole help; usage refuses it."""
    assert help_text(Verb.REFRESH) == help_text(None)
    with pytest.raises(ValueError, match="refresh"):
        usage(Verb.REFRESH)


# ---------------------------------------------------------------- Slack text


def test_slack_to_plain() -> None:
    """Slack entities become readable text and escapes are undone."""
    text = "<@U1|ann> <@U2> <#C1|ops> <!here> <!subteam^S1|@sec> <mailto:a@b.c|a@b.c> <https://x.y> &lt;&amp;&gt;"
    assert slack_to_plain(text) == "@ann @U2 #ops @here @sec a@b.c https://x.y <&>"


def test_severity_the_platform_refuses_is_a_usage_error() -> None:
    """The parser accepts exactly Xpanse's manual severities, so `critical` is refused before any job."""
    with pytest.raises(UsageError) as info:
        parse("severity xpanse:7 critical")
    assert "low" in info.value.message and "high" in info.value.message


def test_resolve_reason_short_forms_the_client_accepts_parse() -> None:
    """`reason no_risk` on Xpanse parses (the client maps it); a reason no platform knows does not."""
    assert parse("resolve xpanse:7 reason no_risk").reason == "no_risk"
    assert parse("resolve kibana:a1 reason False-Positive").reason == "false-positive"
    with pytest.raises(UsageError):
        parse("resolve xpanse:7 reason because")


# ---------------------------------------------------------------- one rule for identities


@pytest.mark.parametrize(
    ("platform", "value"),
    [
        (Platform.KIBANA, "u_short_0"),
        (Platform.KIBANA, "u_alice_0"),
        (Platform.KIBANA, "u_REDACTED_1"),
        (Platform.KIBANA, "u_79HkWkwmnBH5gqFKwoxggWPjEBOur1zLPXQPEl1VBW0_0"),
        (Platform.KIBANA, "u_short"),
        (Platform.KIBANA, "alice"),
        (Platform.KIBANA, "a/b"),
        (Platform.KIBANA, "alice@example.com"),
        (Platform.DATADOG, UUID.upper()),
        (Platform.DATADOG, UUID.replace("-", "")),
        (Platform.DATADOG, "nope"),
        (Platform.XPANSE, "Alice@Example.com"),
        (Platform.XPANSE, "a@b"),
        (Platform.XPANSE, "nope"),
    ],
)
def test_map_parser_and_mapping_store_agree(platform: Platform, value: str) -> None:
    """`/triage map platform=value` parses exactly what the mapping store accepts, to the same
    value, and otherwise refuses it with the store's own message."""
    try:
        stored: str | None = validate_identity(platform, value)
        refusal = ""
    except UsageError as exc:
        stored, refusal = None, exc.message
    if stored is not None:
        cmd = parse(f"map <@U1> {platform.value}={value}")
        assert cmd.identities == {platform: stored}
    else:
        err = usage_error(f"map <@U1> {platform.value}={value}")
        assert err.message.startswith(refusal + "\nUsage: ")


def test_kibana_short_uid_is_accepted_by_parser_store_and_client() -> None:
    """`u_short_0` has the Elastic profile uid shape (u_ + base64url + _n), so the parser, the
    store and the Kibana client's check all take it; `u_short` (no generation) none of them."""
    assert parse("map <@U1> kibana=u_short_0").identities == {Platform.KIBANA: "u_short_0"}
    assert validate_identity(Platform.KIBANA, "u_short_0") == "u_short_0"
    assert normalise_kibana_uid("u_short_0") == "u_short_0"
    with pytest.raises(UsageError, match="is not a Kibana profile uid"):
        validate_identity(Platform.KIBANA, "u_short")
    assert "'u_short' is not a Kibana profile uid" in usage_error("map <@U1> kibana=u_short").message
