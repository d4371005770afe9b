"""What every ``/triage`` verb parser shares: the ``Command`` it returns and the parse context.

``Ctx`` reads targets, users and free text out of tokens and words errors with the
verb's usage line; ``split_tail`` takes the comment after ``--``. Pure.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field

from bot import rules
from bot.errors import UsageError
from bot.models import Platform, Target, Verb
from bot.slack.grammar import VerbSpec
from bot.slack.tokens import DASHES, QUOTES, Tok, mentioned_user, slack_to_plain
from bot.targets import TargetProblem, read_target, unescape

__all__ = ["Command", "Ctx", "only_on", "sentence", "split_tail"]


class Command(BaseModel):
    """A parsed ``/triage`` command.

    ``user`` is a Slack user id (``me`` becomes the actor); for ``mine`` and
    ``whoami`` it defaults to the actor, and ``from_user`` of ``handoff`` too.
    ``identities`` holds ``map``'s explicit platform ids, ``platform`` is
    ``unmap``'s platform, ``help_verb`` the verb ``help`` was asked about.
    """

    model_config = ConfigDict(frozen=True)

    verb: Verb
    targets: tuple[Target, ...] = ()
    user: str | None = None
    from_user: str | None = None
    case: str | None = None
    reason: str | None = None
    comment: str | None = None
    text: str | None = None
    severity: str | None = None
    expire_at: int | None = None
    tags_add: tuple[str, ...] = ()
    tags_remove: tuple[str, ...] = ()
    identities: dict[Platform, str] = Field(default_factory=dict)
    platform: Platform | None = None
    help_verb: Verb | None = None


@dataclass(frozen=True)
class Ctx:
    text: str
    actor_id: str
    default_space: str
    spec: VerbSpec

    def error(self, problem: str) -> UsageError:
        return UsageError(f"{problem}\nUsage: `{self.spec.usage}`", verb=self.spec.verb)

    def targets(self, toks: Sequence[Tok], *, what: str = "targets") -> tuple[Target, ...]:
        if not toks:
            raise self.error(f"Missing {what}: name at least one item, e.g. `dd:<id>` or a link.")
        found: dict[Target, None] = {}
        for tok in toks:
            pieces = [tok.raw]
            # Commas separate ids in one word; links keep theirs (Kibana rison uses them).
            if not tok.quoted and not tok.raw.startswith("<") and "://" not in tok.raw:
                pieces = [p for p in tok.raw.split(",") if p]
            for piece in pieces:
                try:
                    found.setdefault(read_target(piece, default_space=self.default_space), None)
                except TargetProblem as exc:
                    raise self.error(sentence(str(exc))) from None
        return tuple(found)

    def target(self, toks: Sequence[Tok]) -> Target:
        targets = self.targets(toks, what="target")
        if len(targets) != 1:
            raise self.error(f"`{self.spec.verb}` takes one target; got {len(targets)}.")
        return targets[0]

    def user(self, tok: Tok, *, role: str = "user") -> str:
        user = mentioned_user(tok, self.actor_id)
        if user is not None:
            return user
        shown = unescape(tok.raw)
        if shown.startswith("@"):
            raise self.error(
                f"`{shown}` is not a Slack mention: pick the {role} from Slack's @ autocomplete "
                "so the mention is linked, or write `me`."
            )
        raise self.error(f"Expected the {role} as an @mention or `me`, got `{shown}`.")

    def plain(self, toks: Sequence[Tok]) -> str:
        """The text the tokens span, as typed (a single quoted token loses its quotes)."""
        if len(toks) == 1 and toks[0].quoted:
            return slack_to_plain(toks[0].raw).strip()
        return slack_to_plain(self.text[toks[0].start : toks[-1].end]).strip()


def sentence(problem: str) -> str:
    problem = problem[:1].upper() + problem[1:]
    return problem if problem.endswith((".", "?", "!")) else problem + "."


def split_tail(ctx: Ctx, toks: list[Tok]) -> tuple[list[Tok], str | None]:
    """Split off the free-text comment after a standalone ``--``."""
    for index, tok in enumerate(toks):
        if not tok.quoted and tok.raw in DASHES:
            comment = slack_to_plain(ctx.text[tok.end :]).strip()
            if len(comment) >= 2 and comment[0] in QUOTES and comment[-1] == QUOTES[comment[0]]:
                comment = comment[1:-1].strip()
            if not comment:
                raise ctx.error(f"Nothing after `{tok.raw}`: write the comment after it.")
            return toks[:index], comment
    return toks, None


def only_on(ctx: Ctx, targets: Sequence[Target]) -> None:
    """Refuse targets on platforms the verb does not work on, naming the ones it does."""
    verb = ctx.spec.verb
    others = [t for t in targets if not rules.supports(t.platform, verb)]
    if others:
        where = " and ".join(p.label for p in rules.platforms_for(verb))
        names = ", ".join(f"`{t.key}`" for t in others)
        raise ctx.error(f"`{verb}` works on {where} items only; not {names}.")
