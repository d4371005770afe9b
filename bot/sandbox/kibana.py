"""A sandbox Kibana: Security detection alerts, one in-memory alert index per space.

``KibanaSandbox`` answers what ``KibanaClient`` calls, under ``/s/<space>`` or at the root
for the ``default`` space: ``signals/search`` (the query DSL subset in
``bot.sandbox.dsl``; ``sort``, ``size``, ``_source``; ``from`` and ``search_after`` are
dropped as Kibana's route drops them), ``signals/assignees``, ``signals/status`` and ``signals/tags``
(update-by-query answers as recorded on 9.5.2: every matched alert ``updated``, already
in the state or not, ``noops`` 0, unknown ids the all-zero body; a scripted concurrent
write is the 409 Kibana answers; ids from another space match nothing, removals are
applied before additions, a uid in both ``add`` and ``remove`` is the SIEM-style 400 with
an array message; a closing reason neither default nor custom is the 400 "<reason> is an
invalid closing reason."). As Kibana does, it authenticates first (``Authorization:
ApiKey <key>``, 401 otherwise) and then refuses a non-GET without ``kbn-xsrf`` with its
own message, before any route is reached. A query it does not understand is a 400
noted in ``violations``. Security notes (``PATCH``/``GET /api/note``) are kept per space.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from aiohttp import web

from bot import rules
from bot.sandbox.dsl import UnsupportedQuery, filter_source, matches, sort_keys, values
from bot.sandbox.server import Recorded, SandboxServer, json_response

SPACE_PATH = re.compile(r"^/s/([^/]+)(/.*)$")
Source = dict[str, Any]
Change = Callable[[Source], bool]


def _error(status: int, error: str, message: str) -> web.Response:
    return json_response({"statusCode": status, "error": error, "message": message}, status=status)


def space_of(path: str) -> str:
    """The space a request path addresses (``default`` at the root)."""
    found = SPACE_PATH.match(path)
    return found.group(1) if found else "default"


class KibanaSandbox(SandboxServer):
    """Per-space in-memory alert indices behind Kibana's detection-engine routes."""

    name = "Kibana"

    def __init__(self, *, api_key: str) -> None:
        super().__init__()
        self.api_key = api_key
        # space -> alert id -> flat _source (dotted keys, as the alerts index stores them)
        self.alerts: dict[str, dict[str, Source]] = {}
        # alert id -> how many more updates naming it abort with a 409 version conflict
        self.conflicts: dict[str, int] = {}
        # custom closing reasons (the space's advanced setting), on top of the defaults
        self.custom_close_reasons: set[str] = set()
        # space -> Security notes (PersistNoteRoute), in the order written
        self.notes: dict[str, list[dict[str, Any]]] = {}
        # "legacy": answer notes in the older {"data":{"persistNote":…}} shape
        self.note_shape = "current"
        self._clock = 0

    # ---- seeding and reading ----------------------------------------------------------

    def add_alert(
        self,
        alert_id: str,
        *,
        space: str = "default",
        rule_name: str = "Suspicious process",
        severity: str = "medium",
        status: str = "open",
        assignees: tuple[str, ...] | list[str] = (),
        host: str = "host-1",
    ) -> Source:
        """Seed one alert in ``space``; returns its ``_source`` (live: edits show up)."""
        self._clock += 1
        source: Source = {
            "@timestamp": f"2025-01-17T08:{self._clock // 60:02d}:{self._clock % 60:02d}.000Z",
            "kibana.alert.uuid": alert_id,
            "kibana.alert.rule.name": rule_name,
            "kibana.alert.severity": severity,
            "kibana.alert.workflow_status": status,
            "kibana.alert.workflow_assignee_ids": list(assignees),
            "kibana.space_ids": [space],
            "host.name": host,
        }
        self.alerts.setdefault(space, {})[alert_id] = source
        return source

    def assignees(self, alert_id: str, space: str = "default") -> list[str]:
        return list(self.alerts[space][alert_id]["kibana.alert.workflow_assignee_ids"])

    def status(self, alert_id: str, space: str = "default") -> str:
        return str(self.alerts[space][alert_id]["kibana.alert.workflow_status"])

    def writes(self) -> list[Recorded]:
        """The assignee and status requests received (the writes)."""
        return [r for r in self.requests if r.path.endswith(("/signals/assignees", "/signals/status"))]

    # ---- routing ------------------------------------------------------------------------

    def route(self, path: str) -> str:
        found = SPACE_PATH.match(path)
        return found.group(2) if found else path

    async def precheck(self, req: Recorded) -> web.StreamResponse | None:
        if req.headers.get("authorization") != f"ApiKey {self.api_key}":
            return _error(
                401,
                "Unauthorized",
                "[security_exception\n\tRoot causes:\n\t\tsecurity_exception: "
                "unable to authenticate with "
                "provided credentials and anonymous access is not allowed for this request]",
            )
        if req.method not in ("GET", "HEAD") and not (req.headers.get("kbn-xsrf") or req.headers.get("kbn-version")):
            self.violation(req, "missing kbn-xsrf header")
            return _error(400, "Bad Request", "Request must contain a kbn-xsrf header.")
        return None

    async def handle(self, path: str, req: Recorded) -> web.StreamResponse:
        space = space_of(req.path)
        index = self.alerts.get(space, {})
        body = req.body if isinstance(req.body, dict) else {}
        try:
            if path == "/api/detection_engine/signals/search":
                return self._search(req, space, index, body)
            if path == "/api/detection_engine/signals/assignees":
                return self._assignees(space, index, body)
            if path == "/api/detection_engine/signals/status":
                return self._status(space, index, body)
            if path == "/api/detection_engine/signals/tags":
                return self._tags(space, index, body)
            if path == "/api/note":
                return self._note(req, space, body)
        except (KeyError, TypeError) as exc:
            return json_response({"message": f"[request body] {exc}", "status_code": 400}, status=400)
        return _error(404, "Not Found", "Not Found")

    # ---- routes -------------------------------------------------------------------------

    def _search(self, req: Recorded, space: str, index: dict[str, Source], body: dict[str, Any]) -> web.Response:
        try:
            hits = [(i, s) for i, s in index.items() if matches(body.get("query"), s)]
            for field, desc in reversed(sort_keys(body.get("sort"))):

                def key(hit: tuple[str, Source], f: str = field) -> Any:
                    return (values(hit[1], f) or [""])[0]

                hits.sort(key=key, reverse=desc)
        except UnsupportedQuery as exc:
            self.violations.append(f"POST signals/search: {exc}")
            return json_response({"message": f"[parsing_exception] {exc}", "status_code": 400}, status=400)
        index_name = f".internal.alerts-security.alerts-{space}-000001"
        docs = [
            {
                "_index": index_name,
                "_id": alert_id,
                "_score": None,
                "_source": filter_source(source, body.get("_source")),
            }
            for alert_id, source in hits[: int(body.get("size", 10))]
        ]
        return json_response(
            {
                "took": 1,
                "timed_out": False,
                "_shards": {"total": 1, "successful": 1, "skipped": 0, "failed": 0},
                "hits": {"total": {"value": len(hits), "relation": "eq"}, "max_score": None, "hits": docs},
            }
        )

    def conflict(self, alert_id: str, *, times: int = 1) -> None:
        """Make the next ``times`` updates naming ``alert_id`` abort with a 409 (a concurrent write)."""
        self.conflicts[alert_id] = times

    def _update_by_query(self, space: str, index: dict[str, Source], ids: list[str], change: Change) -> web.Response:
        """Apply ``change(source)`` to each id the space holds, answering like Kibana does.

        Every matched alert counts as ``updated``, already in the requested state or not (the
        scripts never set ``ctx.op = noop``), so ``noops`` stays 0; unknown ids are simply not
        counted (all of them unknown: the all-zero body with ``batches: 0``). A scripted
        conflict aborts the update (Kibana sends no ``conflicts: proceed``): the alerts before
        it stay changed and the answer is the SIEM-style 409.
        """
        updated = total = 0
        for alert_id in dict.fromkeys(ids):
            source = index.get(alert_id)
            if source is None:
                continue
            total += 1
            if self.conflicts.get(alert_id, 0) > 0:
                self.conflicts[alert_id] -= 1
                reason = (
                    f"[{alert_id}]: version conflict, required seqNo [4], primary term [1]. "
                    "current document has seqNo [5] and primary term [1]"
                )
                return json_response({"message": reason, "status_code": 409}, status=409)
            change(source)
            updated += 1
        return json_response(
            {
                "took": 3,
                "timed_out": False,
                "total": total,
                "updated": updated,
                "deleted": 0,
                "batches": 1 if total else 0,
                "version_conflicts": 0,
                "noops": 0,
                "retries": {"bulk": 0, "search": 0},
                "throttled_millis": 0,
                "requests_per_second": -1,
                "throttled_until_millis": 0,
                "failures": [],
            }
        )

    @property
    def close_reasons(self) -> set[str]:
        """The closing reasons this tenant accepts: Kibana's defaults and the custom ones."""
        return set(rules.KIBANA_CLOSE_REASONS) | self.custom_close_reasons

    def _assignees(self, space: str, index: dict[str, Source], body: dict[str, Any]) -> web.Response:
        add = list(body["assignees"]["add"])
        remove = list(body["assignees"]["remove"])
        duplicates = [uid for uid in add if uid in remove]
        if duplicates:
            message = f"Duplicate assignees {json.dumps(duplicates)} were found in the add and remove parameters."
            return json_response({"message": [message], "status_code": 400}, status=400)

        def change(source: Source) -> bool:
            current = [u for u in source.get("kibana.alert.workflow_assignee_ids") or [] if u not in remove]
            current += [u for u in add if u not in current]
            source["kibana.alert.workflow_assignee_ids"] = current
            # The painless script never sets ctx.op = 'noop': every match is reindexed.
            return True

        return self._update_by_query(space, index, list(body["ids"]), change)

    def _status(self, space: str, index: dict[str, Source], body: dict[str, Any]) -> web.Response:
        if "signal_ids" not in body:
            return json_response(
                {"message": "the sandbox supports status by signal_ids only", "status_code": 400}, status=400
            )
        status = body["status"]
        reason = body.get("reason")
        # validate_closing_reason: a default or a custom reason, checked only when closing.
        if status == "closed" and reason is not None and reason not in self.close_reasons:
            return json_response({"message": f"{reason} is an invalid closing reason.", "status_code": 400}, status=400)

        def change(source: Source) -> bool:
            # The script guards on status != params.status: an alert already so is
            # re-indexed (and counted updated) without its workflow fields changing.
            if source.get("kibana.alert.workflow_status") == status:
                return False
            source["kibana.alert.workflow_status"] = status
            source["kibana.alert.workflow_user"] = None  # API-key callers have no profile
            source["kibana.alert.workflow_status_updated_at"] = "2025-01-18T00:00:00.000Z"
            # The reason is dropped unless closing, which clears an earlier one.
            if status == "closed" and reason is not None:
                source["kibana.alert.workflow_reason"] = reason
            else:
                source.pop("kibana.alert.workflow_reason", None)
            return True

        return self._update_by_query(space, index, list(body["signal_ids"]), change)

    # ---- tags and notes (NOTES §6.4) --------------------------------------------------------

    def _tags(self, space: str, index: dict[str, Source], body: dict[str, Any]) -> web.Response:
        add = list(body["tags"]["tags_to_add"])
        remove = list(body["tags"]["tags_to_remove"])
        duplicates = [t for t in add if t in remove]
        if duplicates:
            message = (
                f"Duplicate tags {json.dumps(duplicates)} were found in the tags_to_add and tags_to_remove parameters."
            )
            return json_response({"message": [message], "status_code": 400}, status=400)

        def change(source: Source) -> bool:
            # Removals first, then additions, each de-duplicated (the route's painless script).
            current = [t for t in source.get("kibana.alert.workflow_tags") or [] if t not in remove]
            current += [t for t in dict.fromkeys(add) if t not in current]
            source["kibana.alert.workflow_tags"] = current
            return True

        return self._update_by_query(space, index, list(body["ids"]), change)

    def tags(self, alert_id: str, space: str = "default") -> list[str]:
        return list(self.alerts[space][alert_id].get("kibana.alert.workflow_tags") or [])

    def _note(self, req: Recorded, space: str, body: dict[str, Any]) -> web.Response:
        notes = self.notes.setdefault(space, [])
        if req.method == "GET":
            wanted = req.query.get("documentIds")
            found = [n for n in notes if wanted is None or n["eventId"] == wanted]
            return json_response({"totalCount": len(found), "notes": found})
        if req.method != "PATCH":
            return _error(404, "Not Found", "Not Found")
        self._clock += 1
        note = {
            **body["note"],
            "noteId": f"note-{space}-{len(notes) + 1}",
            "version": "WzQ2LDFd",
            "created": 1_737_100_000_000 + self._clock,
            "createdBy": "triage-bot API key",
            "updated": 1_737_100_000_000 + self._clock,
            "updatedBy": "triage-bot API key",
        }
        notes.append(note)
        if self.note_shape == "legacy":
            return json_response({"data": {"persistNote": {"code": 200, "message": "success", "note": note}}})
        return json_response({"note": note})
