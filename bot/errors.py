"""One error tree for the whole bot.

Everything the bot raises on purpose derives from ``TriageError``::

    TriageError
    ├── UserError                 the analyst can fix it; rendered as a helpful message
    │   ├── UsageError            malformed command or input (carries the verb for its help)
    │   ├── NotMappedError        no platform identity for a Slack user (says how to map one)
    │   ├── ForbiddenError        the policy refuses this actor this verb
    │   ├── NotConfiguredError    the platform has no credentials in this deployment
    │   └── UnsupportedError      the platform has no such operation (e.g. Datadog comment)
    ├── ConfigError               invalid settings or policy at start (one line per problem)
    ├── StoreError                the SQLite store cannot be used (e.g. a newer schema)
    └── PlatformError             a vendor call failed after retries
        ├── PlatformAuthError     401 / 403 / 402 (credentials, permission, licence)
        ├── PlatformNotFound      404 for the whole request (unknown case, …)
        ├── PlatformRateLimited   429 after every retry was spent
        ├── PlatformUnavailable   5xx, timeout or connection error after every retry
        └── PlatformRejected      any other 4xx: the vendor said the request is wrong

Platform clients translate httpx and vendor errors into this tree with
``raise … from exc``; Slack listeners render ``UserError`` for the actor and
give anything else a reference id that is also logged.
"""

from __future__ import annotations


class TriageError(Exception):
    """Base of every error the bot raises on purpose."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class UserError(TriageError):
    """Something the actor can fix; its message is shown to them as is."""


class UsageError(UserError):
    """A malformed command or input; ``verb`` names the command whose help applies."""

    def __init__(self, message: str, *, verb: str | None = None) -> None:
        super().__init__(message)
        self.verb = verb


class NotMappedError(UserError):
    """A Slack user has no identity on a platform, with the way to fix it."""


class ForbiddenError(UserError):
    """The authorisation policy refuses this actor this verb."""


class NotConfiguredError(UserError):
    """The platform is not configured in this deployment."""

    def __init__(self, platform: str) -> None:
        super().__init__(f"{platform} is not configured in this deployment")
        self.platform = platform


class UnsupportedError(UserError):
    """The platform has no such operation."""


class ConfigError(TriageError):
    """Invalid settings or policy; ``problems`` holds one readable line per problem."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("invalid configuration:\n" + "\n".join(f"  - {p}" for p in problems))
        self.problems = problems


class StoreError(TriageError):
    """The store cannot be opened or migrated."""


class PlatformError(TriageError):
    """A vendor call failed; ``status`` is the HTTP status when there was one."""

    def __init__(
        self, platform: str, message: str, *, status: int | None = None, retry_after: float | None = None
    ) -> None:
        prefix = f"{platform}: {status} — " if status else f"{platform}: "
        super().__init__(prefix + message)
        self.platform = platform
        self.reason = message
        self.status = status
        self.retry_after = retry_after


class PlatformAuthError(PlatformError):
    """The credentials were refused or lack a permission (401, 402, 403).

    ``missing`` names the permissions (any one of them would do) the refused operation
    needs, from ``bot.permissions``; empty when the operation has no row there.
    """

    def __init__(
        self,
        platform: str,
        message: str,
        *,
        status: int | None = None,
        retry_after: float | None = None,
        missing: tuple[str, ...] = (),
    ) -> None:
        super().__init__(platform, message, status=status, retry_after=retry_after)
        self.missing = missing


class PlatformNotFound(PlatformError):
    """The vendor answered 404 for the request as a whole."""


class PlatformRateLimited(PlatformError):
    """The vendor kept answering 429 until the retry budget was spent."""


class PlatformUnavailable(PlatformError):
    """5xx, timeouts or connection errors until the retry budget was spent."""


class PlatformRejected(PlatformError):
    """Any other 4xx: the vendor refused the request as malformed or invalid."""
