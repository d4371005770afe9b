"""Whether a stored platform identity still holds: ``verify_identity`` and what ``whoami`` shows.

Used by ``/triage whoami`` (``IdentityResolver.whoami``) and the CLI's ``mappings verify``;
platform failures come back as 'unverified', never raised.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Literal

from pydantic import BaseModel, ConfigDict

from bot import rules
from bot.errors import PlatformError, UnsupportedError, UsageError
from bot.models import Platform
from bot.platforms.base import PlatformClient
from bot.store.mappings import Source

# What the platform calls the identity, for messages.


class Verification(BaseModel):
    """Whether a stored identity still holds on its platform."""

    model_config = ConfigDict(frozen=True)

    state: Literal["ok", "drift", "unverified"]
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.state == "ok"

    def __str__(self) -> str:
        if self.state == "ok":
            return "ok"
        if self.state == "drift":
            return f"drift: {self.detail}"
        return f"unverified ({self.detail})"


class IdentityStatus(BaseModel):
    """One line of ``/triage whoami``: a platform, its identity and whether it still holds."""

    platform: Platform
    value: str | None = None
    source: Source | None = None
    set_by: str | None = None
    updated_at: datetime | None = None
    verified_at: datetime | None = None
    age: timedelta | None = None
    # None when there is no identity or verification was not asked for.
    verification: Verification | None = None

    @property
    def status(self) -> str | None:
        """``'ok'`` | ``'drift: <why>'`` | ``'unverified (<why>)'``, or None when not checked."""
        return str(self.verification) if self.verification else None


async def verify_identity(platform: Platform, value: str, client: PlatformClient | None) -> Verification:
    """Check that ``value`` still names an active identity on ``platform`` (``client`` None:
    not configured); never raises for platform failures, which come back as 'unverified'."""
    if client is None:
        return Verification(state="unverified", detail="platform not configured")
    label = platform.label
    try:
        user = await client.get_user(value)
    except UsageError as exc:
        return Verification(state="drift", detail=f"{value} is not a valid {label} identity: {exc}")
    except UnsupportedError as exc:
        return Verification(state="unverified", detail=str(exc))
    except PlatformError as exc:
        return Verification(state="unverified", detail=f"{label} could not be checked: {exc}")
    if user is None:
        why = {
            Platform.DATADOG: f"Datadog user {value} is disabled or no longer exists",
            Platform.KIBANA: f"Kibana profile {value} no longer exists",
            Platform.XPANSE: f"{value} is not a user in the Xpanse tenant",
        }[platform]
        return Verification(state="drift", detail=why)
    if not user.active:
        noun = rules.IDENTITY_NOUN[platform]
        return Verification(state="drift", detail=f"{label} {noun} {value} is disabled")
    if platform is Platform.KIBANA and user.email is None and user.name is None:
        # KibanaClient answers a bare uid when it has no Elasticsearch to ask: that is
        # "could not check", not "checked and fine".
        return Verification(state="unverified", detail="Elasticsearch not configured, profiles cannot be checked")
    return Verification(state="ok")
