"""Who may use which verb: the authorisation policy read from ``TRIAGE_POLICY``.

The file is YAML, with two optional top-level keys::

    admins:                       # admins may do everything
      users: [U0ADMIN]            # Slack user ids (U… or W…)
      groups: [S0SECLEADS]        # Slack user group ids (S…)
    verbs:                        # one rule per verb; any match allows
      resolve:  {users: [U012AB3CD], groups: [S0TRIAGE], channels: [C0SECOPS]}
      severity: {groups: [S0TRIAGE]}
      import:   {everyone: true}  # open an admin-only verb to everybody
      handoff_others: {}          # an empty rule: admins only

Verb names are the values of ``bot.models.Verb`` plus three pseudo-verbs for the
sensitive variants: ``map_others`` (map or unmap someone else), ``handoff_others``
(hand off someone else's items) and ``import`` (import identity mappings). A verb
without a rule keeps its default: every ``Verb`` is open to everyone, the pseudo-verbs
are for admins only. With no file at all the whole policy is the default; with no
admins configured nobody may do the admin-only things.

``channels`` allows anyone acting from one of those conversations (C… public, G…
private). ``groups`` needs the actor's user group membership, which costs a Slack
call (``usergroups.users.list``, scope ``usergroups:read``); ``Policy.needs_groups``
tells the caller when that look-up matters.
"""

from __future__ import annotations

import re
from typing import Annotated, Final, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, PrivateAttr, ValidationError

from bot.core.yaml_file import location, read_yaml
from bot.errors import ConfigError, ForbiddenError
from bot.models import Verb

MAP_OTHERS: Final = "map_others"
HANDOFF_OTHERS: Final = "handoff_others"
IMPORT: Final = "import"
PSEUDO_VERBS: Final[tuple[str, ...]] = (MAP_OTHERS, HANDOFF_OTHERS, IMPORT)
ALL_VERBS: Final[tuple[str, ...]] = (*(v.value for v in Verb), *PSEUDO_VERBS)

VerbName = Literal[
    "assign", "unassign", "attach", "detach", "resolve", "reopen", "ack", "tag", "comment", "severity",
    "show", "refresh",
    "handoff", "history", "mine", "map", "unmap", "whoami", "help", "oncall", "undo",
    "map_others", "handoff_others", "import",
]  # fmt: skip
# Keep the Literal in step with the enum: a new Verb without a policy name would be
# unconfigurable, so fail at import rather than at the first refusal.
if set(VerbName.__args__) != set(ALL_VERBS):  # type: ignore[attr-defined]
    raise RuntimeError("bot.core.policy.VerbName is out of step with bot.models.Verb")

# What each verb lets someone do, phrased to follow "may" in a refusal.
ACTIONS: Final[dict[str, str]] = {
    "assign": "assign items",
    "unassign": "unassign items",
    "attach": "attach items to a case",
    "detach": "detach items from their case",
    "resolve": "resolve items",
    "reopen": "reopen items",
    "ack": "acknowledge items",
    "tag": "tag items",
    "comment": "comment on items",
    "severity": "change the severity of items",
    "show": "show items",
    "refresh": "refresh items",
    "handoff": "hand off items",
    "history": "see the history of items",
    "mine": "list their items",
    "map": "map their platform identities",
    "unmap": "unmap their platform identities",
    "whoami": "see their platform identities",
    "help": "get help",
    "oncall": "see who is on call",
    "undo": "undo changes",
    MAP_OTHERS: "map or unmap someone else",
    HANDOFF_OTHERS: "hand off someone else's items",
    IMPORT: "import identity mappings",
}

_USER_ID = re.compile(r"^[UW][A-Z0-9]+$")
_GROUP_ID = re.compile(r"^S[A-Z0-9]+$")
_CHANNEL_ID = re.compile(r"^[CG][A-Z0-9]+$")


def _id_checker(pattern: re.Pattern[str], what: str) -> AfterValidator:
    def check(value: str) -> str:
        if not pattern.match(value):
            raise ValueError(f"{value!r} is not a Slack {what}")
        return value

    return AfterValidator(check)


UserId = Annotated[str, _id_checker(_USER_ID, "user id (U… or W…)")]
GroupId = Annotated[str, _id_checker(_GROUP_ID, "user group id (S…)")]
ChannelId = Annotated[str, _id_checker(_CHANNEL_ID, "channel id (C… or G…)")]


class Admins(BaseModel):
    """The people who may do everything: user ids and members of user groups."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    users: frozenset[UserId] = frozenset()
    groups: frozenset[GroupId] = frozenset()

    @property
    def configured(self) -> bool:
        return bool(self.users or self.groups)

    def mentions(self) -> str:
        """The admins as Slack mentions, users first, in a stable order."""
        return ", ".join([f"<@{u}>" for u in sorted(self.users)] + [f"<!subteam^{g}>" for g in sorted(self.groups)])


class Rule(BaseModel):
    """Who may use one verb besides the admins; any match allows."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    everyone: bool = False
    users: frozenset[UserId] = frozenset()
    groups: frozenset[GroupId] = frozenset()
    channels: frozenset[ChannelId] = frozenset()

    def allows(self, *, actor_id: str, channel_id: str | None, actor_groups: frozenset[str]) -> bool:
        """Whether this rule alone lets the actor act (admins are checked by the policy)."""
        return (
            self.everyone
            or actor_id in self.users
            or bool(self.groups & actor_groups)
            or (channel_id is not None and channel_id in self.channels)
        )

    def who(self) -> list[str]:
        """Who the rule names, as Slack mentions (empty for everyone or admins only)."""
        return (
            [f"<@{u}>" for u in sorted(self.users)]
            + [f"members of <!subteam^{g}>" for g in sorted(self.groups)]
            + [f"anyone in <#{c}>" for c in sorted(self.channels)]
        )


EVERYONE: Final = Rule(everyone=True)
ADMINS_ONLY: Final = Rule()
DEFAULT_RULES: Final[dict[str, Rule]] = {
    **{v.value: EVERYONE for v in Verb},
    **{p: ADMINS_ONLY for p in PSEUDO_VERBS},
}


def _join(parts: list[str], last: str = "or") -> str:
    if len(parts) <= 1:
        return "".join(parts)
    return ", ".join(parts[:-1]) + f" {last} " + parts[-1]


class Policy(BaseModel):
    """The authorisation policy: admins plus one optional rule per verb."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    admins: Admins = Field(default_factory=Admins)
    verbs: dict[VerbName, Rule] = Field(default_factory=dict)

    _source: str | None = PrivateAttr(default=None)

    def rule(self, verb: str) -> Rule:
        """The rule for ``verb``: the file's, else the default; ``ValueError`` if unknown."""
        if verb not in DEFAULT_RULES:
            raise ValueError(f"unknown policy verb {verb!r}; known: {', '.join(ALL_VERBS)}")
        found = next((rule for name, rule in self.verbs.items() if name == verb), None)
        return found if found is not None else DEFAULT_RULES[verb]

    def is_admin(self, *, actor_id: str, actor_groups: frozenset[str] = frozenset()) -> bool:
        """Whether the actor is an admin, by user id or user group membership."""
        return actor_id in self.admins.users or bool(self.admins.groups & actor_groups)

    def needs_groups(self, verb: str) -> bool:
        """Whether deciding ``verb`` can depend on the actor's user groups (so look them up).

        False when the verb is open to everyone, or when neither the verb's rule nor the
        admins name a group. Raises ``ValueError`` for an unknown verb.
        """
        rule = self.rule(verb)
        return not rule.everyone and bool(rule.groups or self.admins.groups)

    def authorize(
        self,
        *,
        verb: str,
        actor_id: str,
        channel_id: str | None,
        actor_groups: frozenset[str] = frozenset(),
    ) -> None:
        """Allow the actor to use ``verb`` or raise ``ForbiddenError`` saying who may.

        ``actor_groups`` are the user group ids the actor belongs to; pass them when
        ``needs_groups(verb)`` is true (otherwise they cannot change the answer).
        Raises ``ValueError`` for a verb the policy does not know (a programming error).
        """
        rule = self.rule(verb)
        if rule.allows(actor_id=actor_id, channel_id=channel_id, actor_groups=actor_groups):
            return
        if self.is_admin(actor_id=actor_id, actor_groups=actor_groups):
            return
        raise ForbiddenError(self._refusal(verb, rule))

    def _refusal(self, verb: str, rule: Rule) -> str:
        action = ACTIONS[verb]
        who = rule.who()
        if not who:
            if not self.admins.configured:
                return f"Nobody may {action}: it is for admins only and no admins are configured in TRIAGE_POLICY."
            return f"Only admins may {action} (admins: {self.admins.mentions()})."
        admins = f" (admins may too: {self.admins.mentions()})" if self.admins.configured else ""
        return f"Only {_join(who)} may {action}{admins}."

    def describe(self) -> list[str]:
        """One line for the source, one for the admins and one per verb, for logs and ``check``."""
        source = f"policy: {self._source}" if self._source else "policy: default (TRIAGE_POLICY not set)"
        if self.admins.configured:
            parts = []
            if self.admins.users:
                parts.append("users " + ", ".join(sorted(self.admins.users)))
            if self.admins.groups:
                parts.append("groups " + ", ".join(sorted(self.admins.groups)))
            admins = "admins: " + "; ".join(parts)
        else:
            admins = "admins: none configured (admin-only verbs are refused to everyone)"
        lines = [source, admins]
        for verb in ALL_VERBS:
            rule = self.rule(verb)
            origin = "" if verb in self.verbs else " (default)"
            if rule.everyone:
                text = "everyone"
            elif not (rule.users or rule.groups or rule.channels):
                text = "admins only"
            else:
                parts = []
                for name, ids in (
                    ("users", rule.users),
                    ("groups", rule.groups),
                    ("channels", rule.channels),
                ):
                    if ids:
                        parts.append(f"{name} " + ", ".join(sorted(ids)))
                text = "; ".join(parts) + " (and admins)"
            lines.append(f"{verb}: {text}{origin}")
        return lines


def _problems(path: str, exc: ValidationError) -> list[str]:
    problems = []
    for err in exc.errors():
        loc = tuple(err["loc"])
        if loc[-1:] == ("[key]",) and loc[:1] == ("verbs",):
            # pydantic reports a bad dict key as a Literal mismatch on "[key]": say it plainly.
            problems.append(
                f"{path}: {location(loc[:-1])}: unknown verb {loc[-2]!r}; known verbs: {', '.join(ALL_VERBS)}"
            )
            continue
        if err["type"] == "extra_forbidden":
            msg = "unknown key"
        elif err["type"] == "frozen_set_type" or err["type"] == "set_type":
            msg = "must be a list of ids"
        else:
            msg = err["msg"].removeprefix("Value error, ")
        problems.append(f"{path}: {location(loc)}: {msg}")
    return problems


def load_policy(path: str | None) -> Policy:
    """Read the policy file at ``path`` (``None`` gives the default policy).

    Raises ``ConfigError`` with one line per problem, each naming the file and key
    path, when the file is missing, unreadable, not YAML, has unknown keys or verbs,
    or holds ids of the wrong shape. An empty file is the default policy.
    """
    if path is None:
        return Policy()
    data = read_yaml(path, "TRIAGE_POLICY")
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(
            [f"{path}: the top level must be a mapping with keys 'admins' and 'verbs', "
             f"got {type(data).__name__}"]
        )  # fmt: skip
    try:
        policy = Policy.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_problems(path, exc)) from None
    policy._source = path
    return policy
