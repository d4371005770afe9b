"""``build_app``: a fresh Bolt ``AsyncApp`` wired to the services; nothing is started.

The listeners (``bot.slack.listeners``) are glue in front of the one door
(``bot.core.door.Core``); ``bot.slack.errors`` answers whatever they raise. The
listener is awaited inline (``process_before_response``): it does only the short
durable write, so Slack gets its answer without Bolt's polling step, and anything
slower runs in the background after the response has gone. ``/triage`` and the card's
buttons also have a route past Bolt's dispatch (``bot.slack.hot``, used by ``bot.web`` and
the Socket Mode handler), to the same listener bodies.

Bolt's listeners call Slack (``views.open`` for a modal, within the trigger's 3 seconds)
through Bolt's own ``AsyncWebClient``, with the SDK's retry handlers and one pool of
connections for the process; everything else goes through ``Services.slack``.
"""

from __future__ import annotations

from typing import Any

import aiohttp
from slack_bolt.async_app import AsyncApp
from slack_bolt.middleware.authorization.async_single_team_authorization import AsyncSingleTeamAuthorization
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
    AsyncServerErrorRetryHandler,
)
from slack_sdk.web.async_client import AsyncWebClient

from bot.runtime import Services
from bot.settings import Settings
from bot.slack.digest import register_digest
from bot.slack.errors import ErrorAnswers, register_error_handler
from bot.slack.hot import Background, HotRoutes
from bot.slack.listeners import register


def bolt_web_client(services: Services) -> AsyncWebClient:
    """The listeners' client: the services' token and URL, a pooled session closed with them."""
    session = aiohttp.ClientSession()
    services.closers.append(session.close)
    return AsyncWebClient(
        token=services.slack.token,
        base_url=services.slack.base_url,
        session=session,
        retry_handlers=[
            AsyncConnectionErrorRetryHandler(max_retry_count=2),
            AsyncRateLimitErrorRetryHandler(max_retry_count=5),
            AsyncServerErrorRetryHandler(max_retry_count=2),
        ],
    )


def build_app(settings: Settings, services: Services) -> AsyncApp:
    """A new ``AsyncApp`` with every listener and the error handler registered."""
    secret = settings.slack_signing_secret
    client = bolt_web_client(services)
    app = AsyncApp(
        # Named, so Bolt does not derive a name from ``inspect.stack()``, which reads the source
        # of every calling frame (a tenth of a second of start-up).
        name="slack-triage-bot",
        client=client,
        signing_secret=secret.get_secret_value() if secret else None,
        # Over HTTP, ``bot.web`` checks every request's signature before Bolt sees it (and
        # refuses a bad one with 401 before anything is parsed), so Bolt checking it again
        # would only compute the same HMAC twice; Socket Mode requests carry no signature.
        request_verification_enabled=False,
        process_before_response=True,
        raise_error_for_unhandled_request=False,
    )
    background = Background()
    errors = ErrorAnswers(reporter=services.reporter, spawn=background.spawn)
    hot = HotRoutes(
        core=services.core,
        reporter=services.reporter,
        background=background,
        errors=errors,
        default_space=settings.kibana_space,
        client=client,
    )
    # Tests and the shell wait on background tasks through this; ``bot.web`` finds the hot routes.
    state: dict[str, Any] = {"background": background, "hot": hot}
    app.__dict__["triage_state"] = state
    register(
        app,
        core=services.core,
        reporter=services.reporter,
        background=background,
        hot=hot,
        groups=services.access.groups,
        default_space=settings.kibana_space,
        unfurl_domains=settings.unfurl_domains,
    )
    register_digest(app, core=services.core, reporter=services.reporter, background=background, intake=services.intake)
    register_error_handler(app, errors)
    return app


def hot_routes(app: AsyncApp) -> HotRoutes | None:
    """The routes ``build_app`` made for the requests answered without Bolt's dispatch, if ``app`` is one."""
    hot = app.__dict__.get("triage_state", {}).get("hot")
    return hot if isinstance(hot, HotRoutes) else None


async def prime_authorization(app: AsyncApp) -> None:
    """Call ``auth.test`` now, before serving, instead of on the first request's ack path.

    Bolt's single-team authorization asks Slack who the bot is on the first request
    and caches the answer; that first ack would wait on the network. Bolt has no public
    hook for this, so the middleware's cache is filled here. Raises ``SlackApiError``
    (a bad token) like the first request would have.
    """
    for middleware in app._async_middleware_list:
        if isinstance(middleware, AsyncSingleTeamAuthorization) and middleware.auth_test_result is None:
            middleware.auth_test_result = await app.client.auth_test()
