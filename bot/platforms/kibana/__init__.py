"""Elastic Security (Kibana) detection alerts, and the optional Elasticsearch profile look-up.

Every alert lives in one Kibana space (its index is ``.alerts-security.alerts-<space>``),
so a ``Target`` carries its space (``None`` means the configured default space) and
every call goes to that space: no prefix for the space ``default``, ``/s/<space>``
otherwise. An id sent to the wrong space is not an error for Kibana (HTTP 200 with
``updated: 0``), which is why every write here reads the alerts first, sends only
ids the space holds, and checks ``updated`` against what it sent.

Writes are idempotent set operations (assignee add/remove, a target status), so the
shared HTTP layer may retry them safely. Reads that fail raise a ``PlatformError``
before anything is written; a write request that fails is reported per item as
``FAILED`` with the vendor's status and reason, so one space's failure never hides
another space's success.

Beyond assign and close (``client``), ``triage`` reopens and acknowledges alerts, sets
their tags, and after each write from Slack notes on the alert who asked (an API key
writes as nobody).

Kibana has no public API from an email to a user profile uid: when an Elasticsearch
endpoint is configured the client asks ``/_security/profile/_suggest`` and keeps only
an exact email match; without one, ``find_user_by_email`` returns ``None`` (the
caller falls back to a configured mapping) and ``get_user`` cannot verify a uid.
"""

from __future__ import annotations

from bot.platforms.kibana.triage import KibanaClient
from bot.platforms.kibana.wire import CLOSE_REASONS, MAX_BATCH, OPEN_STATUSES, parse_error

__all__ = ["CLOSE_REASONS", "MAX_BATCH", "OPEN_STATUSES", "KibanaClient", "parse_error"]
