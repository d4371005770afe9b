"""A sandbox Elasticsearch: the user-profile API the Kibana client uses to find people.

``/_security/profile/_suggest`` ranks profiles sharing a token or a substring with
``name``; ``/_security/profile/<uid>`` answers ``{"profiles": [...]}`` (an empty list
for an unknown uid plus its ``errors``, as current Elasticsearch does). With ``serverless``
set, ``_suggest`` answers the 410 recorded on Serverless 9.6.0. ``Authorization: ApiKey <key>`` is
checked (401 ``security_exception`` otherwise).
"""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web

from bot.sandbox.server import Recorded, SandboxServer, json_response

_UNAUTHENTICATED = "unable to authenticate with provided credentials"


class ElasticsearchSandbox(SandboxServer):
    """Elasticsearch user profiles, for the Kibana e-mail look-up."""

    name = "Elasticsearch"

    def __init__(self, *, api_key: str) -> None:
        super().__init__()
        self.api_key = api_key
        self.profiles: dict[str, dict[str, Any]] = {}
        # Serverless: _suggest exists but is not available (410).
        self.serverless = False

    def add_profile(
        self,
        uid: str,
        *,
        email: str | None,
        username: str,
        full_name: str | None = None,
        enabled: bool = True,
    ) -> dict[str, Any]:
        """Seed one user profile (``email`` None: a profile the e-mail look-up cannot find)."""
        profile: dict[str, Any] = {
            "uid": uid,
            "enabled": enabled,
            "last_synchronized": 1700000000000,
            "user": {
                "username": username,
                "roles": ["analyst"],
                "realm_name": "native",
                "email": email,
                "full_name": full_name,
            },
            "labels": {},
            "data": {},
        }
        self.profiles[uid] = profile
        return profile

    async def handle(self, path: str, req: Recorded) -> web.StreamResponse:
        if req.headers.get("authorization") != f"ApiKey {self.api_key}":
            cause = {"type": "security_exception", "reason": _UNAUTHENTICATED}
            return json_response({"error": {"root_cause": [cause], **cause}, "status": 401}, status=401)
        if path == "/_security/profile/_suggest" and self.serverless:
            reason = (
                f"Request for uri [{path}] with method [{req.method}] exists but is not available "
                "when running in serverless mode"
            )
            cause = {"type": "api_not_available_exception", "reason": reason}
            return json_response({"error": {"root_cause": [cause], **cause}, "status": 410}, status=410)
        if path == "/_security/profile/_suggest":
            return self._suggest(req.body if isinstance(req.body, dict) else {})
        if path.startswith("/_security/profile/"):
            uid = path.rsplit("/", 1)[1]
            profile = self.profiles.get(uid)
            if profile:
                return json_response({"profiles": [profile]})
            missing = {"type": "resource_not_found_exception", "reason": "profile document not found"}
            return json_response({"profiles": [], "errors": {"count": 1, "details": {uid: missing}}})
        return json_response({"error": "no handler found"}, status=400)

    def _suggest(self, body: dict[str, Any]) -> web.Response:
        """Relevance-ish ranking: profiles sharing a token or substring with ``name``."""
        name = str(body.get("name") or "").lower()
        tokens = [t for t in re.split(r"[^a-z0-9]+", name) if t]
        scored: list[tuple[int, int, dict[str, Any]]] = []
        for order, profile in enumerate(self.profiles.values()):
            user = profile["user"]
            text = " ".join(str(user.get(k) or "") for k in ("username", "full_name", "email")).lower()
            score = sum(1 for t in tokens if t in text) + (1 if name and name in text else 0)
            if score:
                scored.append((-score, order, profile))
        scored.sort(key=lambda s: (s[0], s[1]))
        found = [p for _, _, p in scored[: int(body.get("size", 10))]]
        return json_response(
            {
                "took": 2,
                "total": {"value": len(found), "relation": "eq"},
                "profiles": [{k: v for k, v in p.items() if k != "last_synchronized"} for p in found],
            }
        )
