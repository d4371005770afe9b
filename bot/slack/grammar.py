"""The ``/triage`` grammar, declared once as data, and the help and usage lines made from it.

``GRAMMAR`` is what ``bot.slack.commands`` parses and what the help shows, so help
cannot drift from what parses. Pure.
"""

from __future__ import annotations

from dataclasses import dataclass

from bot import rules
from bot.models import Verb

__all__ = ["BY_WORD", "GRAMMAR", "SPECS", "TARGETS_HELP", "VerbSpec", "help_text", "usage"]


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
        Verb.DETACH,
        "detach <datadog targets…>",
        "Take Datadog findings out of their case.",
        ("detach dd:ZGVmLTAwcC1pZXJ-aS0w",),
    ),
    VerbSpec(
        Verb.RESOLVE,
        "resolve <targets…> [reason <reason>] [for <30d> | until <YYYY-MM-DD>] [-- comment]",
        "Mute Datadog findings (a reason, an optional expiry and a description of at most 280 characters), "
        "close Kibana alerts or resolve Xpanse incidents.",
        (
            "resolve dd:ZGVmLTAwcC1pZXJ-aS0w reason risk_accepted for 30d -- fix planned for Q3",
            "resolve dd:ZGVmLTAwcC1pZXJ-aS0w reason false_positive until 2099-12-31",
            "resolve kibana:8a3f2c reason false_positive -- scanner noise",
            "resolve xpanse:5471 reason resolved_-_no_risk",
        ),
    ),
    VerbSpec(
        Verb.REOPEN,
        "reopen <targets…> [reason <reason>] [-- comment]",
        "Unmute Datadog findings, reopen Kibana alerts or put Xpanse incidents back under investigation.",
        ("reopen dd:ZGVmLTAwcC1pZXJ-aS0w reason human_error", "reopen kibana:8a3f2c xpanse:5471"),
    ),
    VerbSpec(
        Verb.ACK,
        "ack <kibana targets…>",
        "Mark Kibana alerts acknowledged.",
        ("ack kibana:soc/8a3f2c",),
    ),
    VerbSpec(
        Verb.TAG,
        "tag <kibana targets…> <+tag | -tag …>",
        "Add (`+`) and remove (`-`) tags on Kibana alerts.",
        ("tag kibana:8a3f2c +triaged -noise",),
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
    VerbSpec(
        Verb.ONCALL,
        "oncall [schedule]",
        "Show who is on call now and next on each configured schedule, and any pending shift-change handoff.",
        ("oncall", "oncall secops-primary"),
    ),
)

SPECS: dict[Verb, VerbSpec] = {spec.verb: spec for spec in GRAMMAR}
BY_WORD: dict[str, VerbSpec] = {spec.verb.value: spec for spec in GRAMMAR}

TARGETS_HELP = (
    "*Targets:* `dd:<finding id>` (or `datadog:`), `kibana:<alert id>` or "
    "`kibana:<space>/<alert id>`, `xpanse:<incident id>`, or a link to the item in "
    "Datadog, Kibana or Xpanse. Separate several with spaces or commas; platforms can be mixed."
)


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
        lines.append(f"Datadog expiry: {rules.EXPIRY_FORMS}; none mutes indefinitely.")
    if spec.verb is Verb.REOPEN:
        for platform, reasons in rules.REOPEN_REASONS.items():
            lines.append(f"{platform.label} reasons: " + ", ".join(f"`{r}`" for r in reasons) + " (default `other`)")
    if spec.examples:
        lines.append("*Examples:*")
        lines += [f"• `/triage {example}`" for example in spec.examples]
    if spec.verb not in (Verb.MINE, Verb.MAP, Verb.UNMAP, Verb.WHOAMI, Verb.HELP, Verb.HANDOFF, Verb.ONCALL):
        lines.append(TARGETS_HELP)
    return "\n".join(lines)
