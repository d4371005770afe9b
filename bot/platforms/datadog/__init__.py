"""Datadog security findings: assign, unassign, attach to a case, read, list, identities.

Every call follows ``../shared/contracts/datadog.yaml`` and its NOTES:

* assignment is ``PATCH /api/v2/security/findings/assignee`` (preview API), at most
  100 findings per request, and a 202 can still carry per-finding ``meta.failures``;
* attaching is ``PATCH /api/v2/security/findings/cases/{uuid}``, at most 50 findings,
  with a case key (``SEC-123``) resolved to its UUID first through ``GET /api/v2/cases/{key}``;
* one unknown finding id fails a bulk write whole (404 ``finding not found``, as recorded
  for mute and detach): the ids the search knows are sent again, the rest are NOT_FOUND
  (``partial``; two extra calls per refused request);
* reads go through ``POST /api/v2/security/findings/search`` (cursor paging on
  ``meta.page.after``; ``links.next`` is a relative path and is not followed), and a
  finding's fields sit under ``attributes.attributes.custom``;
* mute and unmute are ``PATCH /api/v2/security/findings/mute`` (``/triage resolve`` and
  ``reopen``), detaching is ``DELETE /api/v2/security/findings/cases`` (module ``triage``);
* identities come from ``GET /api/v2/users`` (a substring filter, so matches are exact client-side).

Whole-request failures of a write become per-item ``FAILED`` results so one bad chunk
never hides the outcome of the others; reads raise the ``PlatformError`` they met.

The client is in ``client`` (users in ``users``); the reading of Datadog's answers, pure, in ``wire``.
"""

from __future__ import annotations

from bot.platforms.datadog.client import ASSIGN_CHUNK, ATTACH_MAX
from bot.platforms.datadog.triage import DatadogClient
from bot.platforms.datadog.wire import parse_datadog_error

__all__ = ["ASSIGN_CHUNK", "ATTACH_MAX", "DatadogClient", "parse_datadog_error"]
