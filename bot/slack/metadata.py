"""Typed state carried through Slack: button ``value`` and view ``private_metadata``.

Each model serialises to compact JSON (short field aliases, targets as their
canonical ``Target.key`` text, ``None`` fields left out) and is read back with
``model_validate_json``. ``dumps`` refuses to produce more than Slack accepts
(2,000 characters for a button value, 3,000 for ``private_metadata``) by raising
``ValueError``, so an oversize payload fails where it is built rather than as an
``invalid_blocks`` error from Slack. ``loads`` raises ``ValueError`` (pydantic's
``ValidationError`` is one) for anything that is not a payload this module wrote.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Self

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PlainSerializer

from bot.errors import UsageError
from bot.models import Target, Verb
from bot.targets import parse_target

BUTTON_VALUE_MAX = 2000
PRIVATE_METADATA_MAX = 3000


def _load_target(value: Any) -> Any:
    if isinstance(value, str):
        try:
            # default_space=None keeps the space exactly as serialised.
            return parse_target(value, default_space=None)
        except UsageError as exc:
            raise ValueError(str(exc)) from None
    return value


# A Target that travels as its key ("dd:abc", "kibana:soc/abc"): shorter than its fields.
TargetKey = Annotated[
    Target,
    BeforeValidator(_load_target),
    PlainSerializer(lambda target: target.key, return_type=str),
]


class _Packed(BaseModel):
    """Base of every Slack-carried payload: compact JSON with a length limit."""

    model_config = ConfigDict(frozen=True, populate_by_name=True, extra="forbid")

    max_chars: ClassVar[int] = BUTTON_VALUE_MAX

    def dumps(self) -> str:
        """The compact JSON form; raises ``ValueError`` if it is longer than ``max_chars``."""
        raw = self.model_dump_json(by_alias=True, exclude_none=True)
        if len(raw) > self.max_chars:
            raise ValueError(f"{type(self).__name__} is {len(raw)} characters; Slack allows {self.max_chars}")
        return raw

    @classmethod
    def loads(cls, raw: str) -> Self:
        """Read back what ``dumps`` wrote; raises ``ValueError`` for anything else."""
        if len(raw) > cls.max_chars:
            raise ValueError(f"{cls.__name__} payload longer than {cls.max_chars} characters")
        return cls.model_validate_json(raw)


class CardRef(_Packed):
    """What a card button needs: the item, and where the card is (when known).

    ``channel``/``ts`` are the card message's; they are None on a card built before
    it is posted, in which case the listener reads them from the action's container.
    """

    target: TargetKey = Field(alias="t")
    channel: str | None = Field(default=None, alias="c")
    ts: str | None = Field(default=None, alias="ts")
    thread_ts: str | None = Field(default=None, alias="tt")


class ModalMeta(_Packed):
    """A modal's ``private_metadata``: the verb, its items, and where to reply."""

    max_chars: ClassVar[int] = PRIVATE_METADATA_MAX

    verb: Verb = Field(alias="v")
    targets: tuple[TargetKey, ...] = Field(alias="t", min_length=1)
    channel: str | None = Field(default=None, alias="c")
    ts: str | None = Field(default=None, alias="ts")
    thread_ts: str | None = Field(default=None, alias="tt")


class HandoffRef(_Packed):
    """A handoff button's value: the id of the stored preview / job it acts on."""

    id: str = Field(min_length=1, max_length=200)


class DigestRef(_Packed):
    """A digest button's value: the id of the stored digest (its rows stay in the store)."""

    id: str = Field(alias="d", min_length=1, max_length=64)


class DigestMeta(_Packed):
    """A digest modal's ``private_metadata``: the verb, the digest, and where it was posted."""

    max_chars: ClassVar[int] = PRIVATE_METADATA_MAX

    verb: Verb = Field(alias="v")
    id: str = Field(alias="d", min_length=1, max_length=64)
    channel: str | None = Field(default=None, alias="c")
    ts: str | None = Field(default=None, alias="ts")


class UndoRef(_Packed):
    """An Undo button's value: the id of the write job it puts back."""

    id: str = Field(alias="u", min_length=1, max_length=200)
