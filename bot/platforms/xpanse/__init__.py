"""Cortex Xpanse incidents through the ``public_api/v1`` REST API.

Every call is ``POST <path>/`` with ``{"request_data": {...}}`` and every
answer is ``{"reply": ...}``; errors share ``{"reply": {"err_code",
"err_msg", "err_extra"}}``. Keys are *standard* (the raw key in
``Authorization``) or *advanced* (a SHA-256 over key, nonce and timestamp,
fresh for every attempt). ``update_incident`` changes one incident per call
and ``get_incidents`` has no assignee filter, so assignee searches page and
filter client-side. Comments are not idempotent and are sent without
automatic retries (see ``XpanseClient.comment``). ``triage`` adds reopen and the
incident details (alert count, top assets) of ``get_incident_extra_data``.
"""

from __future__ import annotations

from bot.platforms.xpanse.auth import XpanseAuth, new_nonce
from bot.platforms.xpanse.triage import XpanseClient
from bot.platforms.xpanse.wire import RESOLVE_REASONS, RESOLVED, SEVERITIES, parse_error

__all__ = ["RESOLVED", "RESOLVE_REASONS", "SEVERITIES", "XpanseAuth", "XpanseClient", "new_nonce", "parse_error"]
