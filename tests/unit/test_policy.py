"""The authorisation policy: defaults, each kind of rule, admins, and invalid files."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.core.policy import ALL_VERBS, PSEUDO_VERBS, Policy, load_policy
from bot.errors import ConfigError, ForbiddenError
from bot.models import Verb

NO_GROUPS: frozenset[str] = frozenset()


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "policy.yaml"
    path.write_text(text, encoding="utf-8")
    return str(path)


def allowed(policy: Policy, verb: str, actor: str, *, channel: str | None = None,
            groups: frozenset[str] = NO_GROUPS) -> bool:  # fmt: skip
    try:
        policy.authorize(verb=verb, actor_id=actor, channel_id=channel, actor_groups=groups)
    except ForbiddenError:
        return False
    return True


@pytest.fixture
def policy(tmp_path: Path) -> Policy:
    return load_policy(
        write(
            tmp_path,
            """
admins:
  users: [U0ADMIN]
  groups: [S0SECLEADS]
verbs:
  resolve: {users: [U0ALICE]}
  severity: {groups: [S0TRIAGE]}
  comment: {channels: [C0SECOPS, G0PRIVATE]}
  assign: {}
  import: {everyone: true}
""",
        )
    )


@pytest.mark.parametrize("verb", [v.value for v in Verb])
def test_default_policy_lets_everyone_use_every_verb(verb: str) -> None:
    """With no TRIAGE_POLICY every ordinary verb is open to any user anywhere."""
    assert allowed(load_policy(None), verb, "U0ANYONE", channel="C0ANY")


@pytest.mark.parametrize("verb", PSEUDO_VERBS)
def test_default_policy_without_admins_refuses_admin_verbs_and_says_why(verb: str) -> None:
    """Admin-only verbs are refused to everyone, naming the missing admin configuration."""
    with pytest.raises(ForbiddenError, match="no admins are configured in TRIAGE_POLICY"):
        load_policy(None).authorize(verb=verb, actor_id="U0ANYONE", channel_id="C0ANY", actor_groups=frozenset({"S0X"}))


def test_handoff_others_refusal_names_the_admins(policy: Policy) -> None:
    """The refusal says what was refused and lists the admins as Slack mentions."""
    with pytest.raises(ForbiddenError) as info:
        policy.authorize(verb="handoff_others", actor_id="U0BOB", channel_id=None, actor_groups=NO_GROUPS)
    assert str(info.value) == (
        "Only admins may hand off someone else's items (admins: <@U0ADMIN>, <!subteam^S0SECLEADS>)."
    )


def test_user_rule_allows_the_user_and_refuses_others(policy: Policy) -> None:
    """A users rule allows exactly the listed users, with a message naming them."""
    assert allowed(policy, "resolve", "U0ALICE")
    with pytest.raises(ForbiddenError) as info:
        policy.authorize(verb="resolve", actor_id="U0BOB", channel_id="C0SECOPS", actor_groups=NO_GROUPS)
    assert str(info.value) == ("Only <@U0ALICE> may resolve items (admins may too: <@U0ADMIN>, <!subteam^S0SECLEADS>).")


def test_group_rule_allows_members_and_refuses_non_members(policy: Policy) -> None:
    """A groups rule allows members of the listed user groups only."""
    assert allowed(policy, "severity", "U0BOB", groups=frozenset({"S0OTHER", "S0TRIAGE"}))
    assert not allowed(policy, "severity", "U0BOB", groups=frozenset({"S0OTHER"}))
    with pytest.raises(ForbiddenError, match=r"members of <!subteam\^S0TRIAGE> may change the severity"):
        policy.authorize(verb="severity", actor_id="U0BOB", channel_id=None, actor_groups=NO_GROUPS)


def test_channel_rule_allows_anyone_in_the_channel_only(policy: Policy) -> None:
    """A channels rule allows anyone acting from a listed channel, nobody elsewhere or in a DM."""
    assert allowed(policy, "comment", "U0BOB", channel="C0SECOPS")
    assert allowed(policy, "comment", "U0BOB", channel="G0PRIVATE")
    assert not allowed(policy, "comment", "U0BOB", channel="C0RANDOM")
    assert not allowed(policy, "comment", "U0BOB", channel=None)
    with pytest.raises(ForbiddenError, match="anyone in <#C0SECOPS> or anyone in <#G0PRIVATE>"):
        policy.authorize(verb="comment", actor_id="U0BOB", channel_id="C0RANDOM", actor_groups=NO_GROUPS)


def test_empty_rule_is_admins_only(policy: Policy) -> None:
    """A verb given an empty rule is refused to everyone but the admins."""
    assert not allowed(policy, "assign", "U0ALICE", channel="C0SECOPS")
    assert allowed(policy, "assign", "U0ADMIN")


def test_everyone_rule_opens_an_admin_only_verb(policy: Policy) -> None:
    """``everyone: true`` opens a pseudo-verb that is admin-only by default."""
    assert allowed(policy, "import", "U0BOB")


@pytest.mark.parametrize("verb", ALL_VERBS)
def test_admins_may_do_everything_by_user_or_group(policy: Policy, verb: str) -> None:
    """An admin by user id or by user group passes every rule, however restrictive."""
    assert allowed(policy, verb, "U0ADMIN")
    assert allowed(policy, verb, "U0CAROL", groups=frozenset({"S0SECLEADS"}))


def test_verb_without_a_rule_falls_back_to_its_default(policy: Policy) -> None:
    """Verbs the file does not mention keep their default: open verbs open, admin verbs closed."""
    assert allowed(policy, "show", "U0BOB")
    assert allowed(policy, "handoff", "U0BOB")
    assert not allowed(policy, "map_others", "U0BOB")
    assert allowed(policy, "map_others", "U0ADMIN")


def test_needs_groups_only_when_a_group_could_decide(tmp_path: Path, policy: Policy) -> None:
    """Group look-ups are needed only when the verb's rule or the admins name a group."""
    assert not policy.needs_groups("import")  # open to everyone
    assert policy.needs_groups("resolve")  # admins are a group
    assert not policy.needs_groups("show")  # default: everyone
    plain = load_policy(write(tmp_path, "admins: {users: [U0ADMIN]}\nverbs: {resolve: {users: [U0A]}}\n"))
    assert not plain.needs_groups("resolve")
    assert not plain.needs_groups("handoff_others")
    grouped = load_policy(write(tmp_path, "verbs: {resolve: {groups: [S0TRIAGE]}}\n"))
    assert grouped.needs_groups("resolve")


def test_unknown_verb_in_a_call_is_a_programming_error(policy: Policy) -> None:
    """Asking about a verb the policy does not know raises ValueError, not a silent allow."""
    with pytest.raises(ValueError, match="unknown policy verb 'resolv'"):
        policy.authorize(verb="resolv", actor_id="U0ADMIN", channel_id=None, actor_groups=NO_GROUPS)


def test_describe_lists_source_admins_and_every_verb(policy: Policy) -> None:
    """describe() gives the file, the admins and one line per verb, marking defaults."""
    lines = policy.describe()
    assert lines[0].startswith("policy: ") and lines[0].endswith("policy.yaml")
    assert lines[1] == "admins: users U0ADMIN; groups S0SECLEADS"
    assert "resolve: users U0ALICE (and admins)" in lines
    assert "assign: admins only" in lines
    assert "show: everyone (default)" in lines
    assert "handoff_others: admins only (default)" in lines
    assert len(lines) == 2 + len(ALL_VERBS)
    default = load_policy(None).describe()
    assert default[:2] == [
        "policy: default (TRIAGE_POLICY not set)",
        "admins: none configured (admin-only verbs are refused to everyone)",
    ]


def test_empty_file_is_the_default_policy(tmp_path: Path) -> None:
    """An empty policy file behaves as the default policy."""
    policy = load_policy(write(tmp_path, ""))
    assert allowed(policy, "resolve", "U0BOB")
    assert not allowed(policy, "import", "U0BOB")


def problems_of(path: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_policy(path)
    return info.value.problems


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    """A TRIAGE_POLICY pointing nowhere fails with the path in the message."""
    path = str(tmp_path / "nope.yaml")
    assert problems_of(path) == [f"{path}: TRIAGE_POLICY file not found"]


def test_bad_yaml_is_a_config_error_with_its_position(tmp_path: Path) -> None:
    """Unparseable YAML fails naming the file and the line."""
    path = write(tmp_path, "admins:\n  users: [U0ADMIN\nverbs: {}\n")
    [problem] = problems_of(path)
    assert problem.startswith(f"{path}: not valid YAML at line ")


def test_top_level_that_is_not_a_mapping_is_a_config_error(tmp_path: Path) -> None:
    """A YAML list at the top level is refused with the expected shape."""
    path = write(tmp_path, "- U0ADMIN\n")
    assert problems_of(path) == [f"{path}: the top level must be a mapping with keys 'admins' and 'verbs', got list"]


def test_duplicate_keys_are_a_config_error(tmp_path: Path) -> None:
    """A verb given twice is refused rather than silently keeping the last rule."""
    path = write(tmp_path, "verbs:\n  resolve: {users: [U0A]}\n  resolve: {}\n")
    [problem] = problems_of(path)
    assert "duplicate key 'resolve' (line 3)" in problem


def test_each_problem_is_one_line_naming_file_and_key_path(tmp_path: Path) -> None:
    """Unknown keys, unknown verbs and malformed ids are all reported, each with its key path."""
    path = write(
        tmp_path,
        """
admins:
  users: [U0ADMIN, "@alice"]
  team: [S0X]
verbs:
  resolv: {users: [U0A]}
  resolve: {users: U0A, channels: [D0DM], roles: [x]}
  handoff_others: {groups: [U0NOTAGROUP]}
extra: 1
""",
    )
    problems = problems_of(path)
    assert sorted(problems) == sorted(
        [
            f"{path}: admins.users[1]: '@alice' is not a Slack user id (U… or W…)",
            f"{path}: admins.team: unknown key",
            f"{path}: verbs.resolv: unknown verb 'resolv'; known verbs: " + ", ".join(ALL_VERBS),
            f"{path}: verbs.resolve.users: must be a list of ids",
            f"{path}: verbs.resolve.channels[0]: 'D0DM' is not a Slack channel id (C… or G…)",
            f"{path}: verbs.resolve.roles: unknown key",
            f"{path}: verbs.handoff_others.groups[0]: 'U0NOTAGROUP' is not a Slack user group id (S…)",
            f"{path}: extra: unknown key",
        ]
    )
