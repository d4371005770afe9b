"""Sandbox schedule sources: a book of shifts, served as PagerDuty and as Datadog On-Call.

``ScheduleBook`` holds people and shifts per schedule with absolute times; the answer is
always for the time the caller asks about (``filter[at_ts]``, ``since``), so whoever drives
the clock (a test, the shell's ``rotate``) decides who is on call. ``rotate`` ends the
current shifts and starts the next people's. ``PagerDutySandbox`` answers ``GET /oncalls``
and ``GET /users/{id}``; ``DatadogOnCallRoutes`` adds
``GET /api/v2/on-call/schedules/{id}/responders`` to the Datadog tenant.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web

from bot.sandbox.datadog import DatadogSandbox
from bot.sandbox.server import Recorded, SandboxServer, json_response

FAR = timedelta(days=3650)


def _iso(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse(value: str | None) -> datetime | None:
    if not value:
        return None
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


@dataclass
class Shift:
    user: str
    start: datetime
    end: datetime
    id: str = field(default_factory=lambda: str(uuid.uuid4()))


@dataclass
class Person:
    id: str
    email: str
    name: str


class ScheduleBook:
    """People and their shifts per schedule."""

    def __init__(self) -> None:
        self.people: dict[str, Person] = {}
        self.shifts: dict[str, list[Shift]] = {}

    def add_person(self, person_id: str, email: str, name: str = "") -> None:
        self.people[person_id] = Person(person_id, email, name or email.split("@")[0].title())

    def on_call(self, schedule: str, users: list[str], *, start: datetime, end: datetime | None = None) -> None:
        """Put ``users`` on call together from ``start`` (until ``end``, default: for years)."""
        for user in users:
            self.shifts.setdefault(schedule, []).append(Shift(user, start, end or start + FAR))

    def rotate(self, schedule: str, users: list[str], *, at: datetime) -> None:
        """End every shift running at ``at`` and put ``users`` on call from then on."""
        kept = []
        for shift in self.shifts.get(schedule, []):
            if shift.start <= at < shift.end:
                shift.end = at
            if shift.start < shift.end:
                kept.append(shift)
        self.shifts[schedule] = kept
        self.on_call(schedule, users, start=at)

    def hand_over(
        self, schedule: str, users: list[str] | None, *, at: datetime, shift: timedelta = timedelta(hours=12)
    ) -> tuple[list[str], list[str]]:
        """The shell's ``rotate``: from ``at`` ``users`` (default: whoever is next) are on call for one
        ``shift``, the outgoing people next after them. Returns (outgoing, incoming); no incoming
        people (nobody next) changes nothing."""
        now = self.positions(schedule, at)
        outgoing = [s.user for s in now["current"]]
        incoming = users or [s.user for s in now["next"]]
        if not incoming:
            return outgoing, []
        self.shifts[schedule] = [s for s in self.shifts.get(schedule, []) if s.start < at]  # re-plan the future
        self.rotate(schedule, incoming, at=at)
        for s in self.shifts[schedule]:
            if s.start == at:
                s.end = at + shift
        if outgoing:
            self.on_call(schedule, outgoing, start=at + shift)
        return outgoing, incoming

    def positions(self, schedule: str, at: datetime) -> dict[str, list[Shift]]:
        """previous / current / next shifts at ``at`` (several at one position: concurrent)."""
        shifts = self.shifts.get(schedule, [])
        current = [s for s in shifts if s.start <= at < s.end]
        past = [s for s in shifts if s.end <= at]
        future = [s for s in shifts if s.start > at]
        last_end = max((s.end for s in past), default=None)
        first_start = min((s.start for s in future), default=None)
        return {
            "previous": [s for s in past if s.end == last_end],
            "current": current,
            "next": [s for s in future if s.start == first_start],
        }


class PagerDutySandbox(SandboxServer):
    """``GET /oncalls`` (offset paging, ``include[]=users``) and ``GET /users/{id}``."""

    name = "PagerDuty"

    def __init__(self, *, api_key: str, book: ScheduleBook | None = None) -> None:
        super().__init__()
        self.api_key = api_key
        self.book = book or ScheduleBook()

    @staticmethod
    def error(status: int, message: str, code: int) -> web.Response:
        return json_response({"error": {"message": message, "code": code}}, status=status)

    async def handle(self, path: str, req: Recorded) -> web.StreamResponse:
        if req.headers.get("authorization") != f"Token token={self.api_key}":
            return self.error(401, "Authentication failed", 2006)
        if path == "/oncalls" and req.method == "GET":
            return self._oncalls(req.query)
        if path.startswith("/users/") and req.method == "GET":
            person = self.book.people.get(path.removeprefix("/users/"))
            if person is None:
                return self.error(404, "Not Found", 2100)
            return json_response({"user": self._user(person)})
        return self.error(404, "Not Found", 2100)

    def _user(self, person: Person) -> dict[str, Any]:
        return {"id": person.id, "type": "user", "summary": person.name, "name": person.name, "email": person.email}

    def _oncalls(self, query: dict[str, str]) -> web.Response:
        schedule = query.get("schedule_ids[]", "")
        now = datetime.now(UTC)
        since, until = _parse(query.get("since")) or now, _parse(query.get("until")) or now
        if schedule not in self.book.shifts:
            return self.error(400, "Invalid Input Provided", 3004)
        hits = sorted(
            (s for s in self.book.shifts[schedule] if s.start < until and s.end > since), key=lambda s: s.start
        )
        users = query.get("include[]") == "users"
        entries = []
        for shift in hits:
            person = self.book.people[shift.user]
            user = self._user(person) if users else {"id": person.id, "type": "user_reference", "summary": person.name}
            entries.append(
                {
                    "user": user,
                    "schedule": {"id": schedule, "type": "schedule_reference"},
                    "escalation_policy": {"id": "PEP0001", "type": "escalation_policy_reference"},
                    "escalation_level": 1,
                    "start": _iso(shift.start),
                    "end": _iso(shift.end),
                }
            )
        limit, offset = int(query.get("limit", "25")), int(query.get("offset", "0"))
        page = entries[offset : offset + limit]
        body = {"oncalls": page, "limit": limit, "offset": offset, "more": offset + limit < len(entries), "total": None}
        return json_response(body)


class DatadogOnCallRoutes(SandboxServer):
    """Mixin before a Datadog tenant: ``GetScheduleOnCallResponders`` from a ``ScheduleBook``."""

    api_key: str
    app_key: str

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.book = ScheduleBook()

    async def handle(self, path: str, req: Recorded) -> web.StreamResponse:
        prefix, suffix = "/api/v2/on-call/schedules/", "/responders"
        if not (path.startswith(prefix) and path.endswith(suffix)):
            return await super().handle(path, req)
        if req.headers.get("dd-api-key") != self.api_key or req.headers.get("dd-application-key") != self.app_key:
            return json_response({"errors": ["Forbidden"]}, status=403)
        schedule = path[len(prefix) : -len(suffix)]
        if schedule not in self.book.shifts:
            return json_response({"errors": ["Not Found"]}, status=404)
        at = _parse(req.query.get("filter[at_ts]")) or datetime.now(UTC)
        wanted = (req.query.get("filter[position]") or "current").split(",")
        include = "responders.shifts.user" in (req.query.get("include") or "")
        return json_response(self._responders(schedule, at, wanted, include=include))

    def _responders(self, schedule: str, at: datetime, wanted: list[str], *, include: bool) -> dict[str, Any]:
        base = f"{schedule}-{int(at.timestamp())}"
        refs, included = [], []
        seen_users: set[str] = set()
        for position, shifts in self.book.positions(schedule, at).items():
            if position not in wanted or not shifts:
                continue  # a position without a shift is left out entirely
            refs.append({"id": f"{base}-{position}", "type": "schedule_oncall_responder"})
            included.append(
                {
                    "id": f"{base}-{position}",
                    "type": "schedule_oncall_responder",
                    "attributes": {"position": position},
                    "relationships": {"shifts": {"data": [{"id": s.id, "type": "shifts"} for s in shifts]}},
                }
            )
            for shift in shifts:
                included.append(
                    {
                        "id": shift.id,
                        "type": "shifts",
                        "attributes": {"start": _iso(shift.start), "end": _iso(shift.end)},
                        "relationships": {"user": {"data": {"id": shift.user, "type": "users"}}},
                    }
                )
                person = self.book.people[shift.user]
                if shift.user not in seen_users:
                    seen_users.add(shift.user)
                    attrs = {"email": person.email, "name": person.name, "status": "active"}
                    included.append({"id": shift.user, "type": "users", "attributes": attrs})
        body: dict[str, Any] = {
            "data": {
                "id": base,
                "type": "schedule_oncall_responders",
                "attributes": {"scheduled_at": _iso(at)},
                "relationships": {
                    "responders": {"data": refs},
                    "schedule": {"data": {"id": schedule, "type": "schedules"}},
                },
            }
        }
        if include:  # recorded: without include there is no `included` at all
            body["included"] = included
        return body


class DatadogWithOnCall(DatadogOnCallRoutes, DatadogSandbox):
    """The sandbox Datadog tenant with On-Call schedules (what the shell runs)."""
