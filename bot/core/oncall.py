"""The on-call watcher: poll each schedule, diff against its baseline, hand off at shift change.

The first poll of a schedule records a baseline and hands nothing off. A change of the
current responders (A to B, or {A, C} to {B, C}: concurrent responders are normal) starts
a handoff of what A holds to B through the one door (``Core.handle`` with
``Source.SCHEDULE`` and the watcher's system actor), so it is authorised and ledgered like
everything else: the preview with Confirm / Cancel goes to the schedule's channel and to
both people. In ``auto`` mode the watcher confirms it once the grace period has passed
unless someone cancelled it; a rotation that flips back first cancels it.

At most once per (schedule, shift start, from, to): the store's unique key decides, across
restarts and replicas. A failed poll (401, 403, 429, 5xx, timeouts, after the HTTP layer's
retries) or a Slack look-up that cannot be made changes nothing, not even the baseline: no
data means no change. ``poll_once(now)`` takes the clock from the caller (tests, the loop).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import structlog

from bot.core import answers as a
from bot.core.door import Core
from bot.core.identity import SLACKBOT, IdentityResolver
from bot.core.oncall_config import OnCallConfig, Schedule
from bot.core.service import ActionRequest, Source, Step
from bot.errors import PlatformAuthError, PlatformError, UserError
from bot.metrics import ONCALL_CHANGES, ONCALL_HANDOFFS, ONCALL_POLLS
from bot.models import HandoffPhase, HandoffPlan, Job, JobParams, JobState, Platform, Verb
from bot.platforms.oncall import Responder, Roster, ScheduleSource, rfc3339
from bot.slack_web import SlackApiError, SlackRequestError
from bot.store.jobs import JobStore
from bot.store.oncall import APPLIED, CANCELLED, ENDED, UNMATCHED, OnCallHandoff, OnCallStore

log = structlog.get_logger(__name__)

# The watcher's actor: Slackbot's id renders as a mention and no person can act as it.
SYSTEM_ACTOR = SLACKBOT


@dataclass(frozen=True)
class Notice:
    """A message the watcher wants posted: in ``channel`` (in ``thread_ts`` when given)."""

    channel: str
    text: str
    thread_ts: str | None = None


Notify = Callable[[Notice], Awaitable[None]]


def pairs(removed: list[str], added: list[str], current: list[str]) -> list[tuple[str, str]]:
    """Who hands off to whom: in order, each leaver to a newcomer; leavers beyond the newcomers
    to the first newcomer, or with no newcomer to the first person still on call (pure)."""
    out = list(zip(removed, added, strict=False))
    fallback = added[0] if added else (current[0] if current else None)
    if fallback is not None:
        out += [(leaver, fallback) for leaver in removed[len(added) :]]
    return out


def fix_command(email: str, responder: Responder | None, source: str) -> str:
    """The command that teaches the bot who ``email`` is in Slack."""
    if source == "datadog" and responder is not None:
        return f"`/triage map @their-slack-user datadog={responder.source_id}`"
    return f"`/triage map @their-slack-user xpanse={email}`"


class OnCallWatcher:
    """Polls the configured schedules and starts shift-change handoffs."""

    def __init__(
        self,
        *,
        config: OnCallConfig,
        sources: Mapping[str, ScheduleSource],
        core: Core,
        store: OnCallStore,
        jobs: JobStore,
        identity: IdentityResolver,
        notify: Notify,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.config = config
        self.sources = dict(sources)
        self.core = core
        self.store = store
        self.jobs = jobs
        self.identity = identity
        self.notify = notify
        self.clock = clock
        self.status: dict[str, str] = {}  # schedule -> "ok …" or "failing — …", for check and /readyz
        self._team: str | None = None
        self._task: asyncio.Task[None] | None = None

    # ---- lifecycle -------------------------------------------------------------------------

    def schedule_names(self) -> list[str]:
        return [s.name for s in self.config.schedules]

    def start(self) -> None:
        """Poll every ``poll`` in the background (nothing to do without schedules)."""
        if self.config.schedules and self._task is None:
            self._task = asyncio.create_task(self._loop(), name="oncall-watcher")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for source in self.sources.values():
            await source.aclose()

    async def _loop(self) -> None:
        while True:
            try:
                await self.poll_once()
            except Exception:  # the loop must outlive any one bad poll; the cause is logged
                log.exception("oncall_poll_crashed")
            await asyncio.sleep(self.config.poll.total_seconds())

    # ---- one poll --------------------------------------------------------------------------

    async def poll_once(self, now: datetime | None = None) -> None:
        """Poll every schedule once at ``now`` (default: the clock), then apply what is due."""
        now = now or self.clock()
        for schedule in self.config.schedules:
            await self._poll(schedule, now)
        await self._settle(now)

    async def _roster(self, schedule: Schedule, now: datetime) -> Roster:
        source = self.sources.get(schedule.source)
        if source is None:
            raise PlatformError(schedule.source, "not configured")
        return await source.roster(schedule.id, at=now)

    async def _poll(self, schedule: Schedule, now: datetime) -> None:
        name = schedule.name
        try:
            roster = await self._roster(schedule, now)
        except PlatformError as exc:
            self._failed(schedule, exc)
            return
        current = roster.current_emails
        self.status[name] = f"ok — {len(current)} on call at {rfc3339(now)}"
        base = await self.store.baseline(name)
        if base is None:
            await self.store.set_baseline(name, current)
            ONCALL_POLLS.labels(name, "baseline").inc()
            log.info("oncall_baseline", schedule=name, responders=current)
            return
        ONCALL_POLLS.labels(name, "ok").inc()
        if set(base) == set(current):
            return
        ONCALL_CHANGES.labels(name).inc()
        removed = sorted(set(base) - set(current))
        added = sorted(set(current) - set(base))
        people = {r.email: r for r in roster.current}
        try:
            team = await self.team()
            matches = {e: await self._match(team, e, people.get(e), schedule) for e in {*removed, *added, *current}}
        except (SlackApiError, SlackRequestError, TimeoutError) as exc:
            # Not knowing who is who is no data either: keep the baseline and try again next poll.
            self.status[name] = f"failing — Slack could not be asked who is on call ({type(exc).__name__})"
            log.warning("oncall_match_failed", schedule=name, error=type(exc).__name__)
            return
        log.info("oncall_change", schedule=name, removed=removed, added=added)
        await self.store.set_baseline(name, current)
        flipped = await self._flip_back(schedule, set(current))
        for from_email, to_email in pairs(removed, added, current):
            if (to_email, from_email) in flipped:
                continue  # back to how it was: the cancelled handoff was the whole story
            start = people[to_email].start if to_email in people else None
            await self._begin(schedule, team, from_email, to_email, rfc3339(start or now), matches, people, now=now)

    def _failed(self, schedule: Schedule, exc: PlatformError) -> None:
        source = self.sources.get(schedule.source)
        auth = isinstance(exc, PlatformAuthError) and not exc.missing  # a 403 names the permission already
        hint = f"; {source.missing_permission}" if auth and source else ""
        status = f"{exc.status} " if exc.status else ""
        self.status[schedule.name] = f"failing — {status}{exc.reason}{hint}"
        ONCALL_POLLS.labels(schedule.name, "error").inc()
        log.warning("oncall_poll_failed", schedule=schedule.name, status=exc.status, reason=exc.reason)

    async def team(self) -> str:
        """The workspace id (``auth.test``, asked once)."""
        if self._team is None:
            auth = await self.identity.slack.auth_test()
            self._team = str(auth.get("team_id") or "")
        return self._team

    async def _match(self, team: str, email: str, responder: Responder | None, schedule: Schedule) -> str | None:
        """The Slack user with this email (Slack's directory, then the mapping store), or None."""
        try:
            found = await self.identity.slack.users_lookupByEmail(email=email)
            user = found.get("user") or {}
            if user.get("id") and not user.get("deleted") and not user.get("is_bot"):
                return str(user["id"])
        except SlackApiError as exc:
            if exc.response.get("error") != "users_not_found":
                raise
        mapped = await self.identity.mappings.find_by_value(Platform.XPANSE, email, team_id=team)
        if mapped is None and responder is not None and schedule.source == "datadog":
            mapped = await self.identity.mappings.find_by_value(Platform.DATADOG, responder.source_id, team_id=team)
        return mapped[1] if mapped else None

    # ---- starting, cancelling, applying ---------------------------------------------------------

    async def _begin(
        self,
        schedule: Schedule,
        team: str,
        from_email: str,
        to_email: str,
        shift_start: str,
        matches: Mapping[str, str | None],
        people: Mapping[str, Responder],
        *,
        now: datetime,
    ) -> None:
        name = schedule.name
        from_user, to_user = matches.get(from_email), matches.get(to_email)
        key: dict[str, Any] = {
            "schedule": name,
            "shift_start": shift_start,
            "from_email": from_email,
            "to_email": to_email,
        }
        if from_user is None or to_user is None:
            lost = [e for e, u in ((from_email, from_user), (to_email, to_user)) if u is None]
            if await self.store.claim(**key, state=UNMATCHED, detail=", ".join(lost)) is None:
                return
            fixes = "; ".join(f"{e}: {fix_command(e, people.get(e), schedule.source)}" for e in lost)
            await self.notify(
                Notice(
                    schedule.channel,
                    f":warning: Shift change on *{name}*: {from_email} → {to_email}, but the bot cannot match "
                    f"{' and '.join(lost)} to a Slack user, so nothing was handed off. Give the Slack profile that "
                    f"email, or map them: {fixes}. Then run `/triage handoff @from to @to`.",
                )
            )
            return
        due = (now + schedule.grace).timestamp() if schedule.mode == "auto" else None
        row = await self.store.claim(**key, due_at=due)
        if row is None:
            return  # this change was handled already (another replica, or before a restart)
        plan = HandoffPlan(schedule=name, shift_start=shift_start, platforms=list(schedule.platforms), auto_at=due)
        request = ActionRequest(
            verb=Verb.HANDOFF,
            team_id=team,
            actor_id=SYSTEM_ACTOR,
            source=Source.SCHEDULE,
            params=JobParams(assignee=to_user, from_user=from_user, handoff=plan),
            channel_id=schedule.channel,
            interaction_key=f"oncall:{row.id}",
        )
        try:
            await self.core.handle(request)
        except UserError as exc:
            await self.store.update(row.id, state=ENDED, detail=exc.message)
            await self.notify(Notice(schedule.channel, f"Shift change on *{name}*: {exc.message}"))
            return
        job = await self.jobs.by_interaction_key(f"oncall:{row.id}")
        await self.store.update(row.id, job_id=job.id if job else None)
        await self.jobs.record(
            team_id=team,
            actor_id=SYSTEM_ACTOR,
            verb=Verb.HANDOFF.value,
            outcome="scheduled",
            job_id=job.id if job else None,
            detail=f"on-call schedule {name} ({schedule.mode}): shift change at {shift_start}, "
            f"{from_email} to {to_email}",
        )
        ONCALL_HANDOFFS.labels(name, schedule.mode).inc()
        log.info("oncall_handoff_started", schedule=name, job_id=job.id if job else None, mode=schedule.mode)

    async def _step(self, job: Job, step: Step) -> bool:
        """Confirm or cancel ``job`` through the door as the watcher; False if it was decided already."""
        request = ActionRequest(
            verb=Verb.HANDOFF,
            team_id=job.team_id,
            actor_id=SYSTEM_ACTOR,
            source=Source.SCHEDULE,
            step=step,
            job_ref=job.id,
            channel_id=job.channel_id,
        )
        try:
            await self.core.handle(request)
        except UserError as exc:
            log.info("oncall_step_skipped", job_id=job.id, step=step.value, reason=exc.message)
            return False
        return True

    async def _flip_back(self, schedule: Schedule, current: set[str]) -> set[tuple[str, str]]:
        """Cancel the pending handoffs whose outgoing person is back on call and receiver is not."""
        cancelled: set[tuple[str, str]] = set()
        for row in await self.store.pending(schedule.name):
            if row.from_email not in current or row.to_email in current:
                continue
            # The row first: a job still queued or collecting reads it and cancels itself before its
            # preview exists (HandoffService.withdrawn); one already awaiting Confirm is cancelled here.
            await self.store.update(row.id, state=CANCELLED, detail="the rotation flipped back")
            job = await self._job(row)
            if job is not None and job.state is JobState.AWAITING_CONFIRM:
                await self._step(job, Step.CANCEL)
            cancelled.add((row.from_email, row.to_email))
            await self.notify(
                Notice(
                    schedule.channel,
                    f":leftwards_arrow_with_hook: The rotation on *{schedule.name}* flipped back to {row.from_email}: "
                    f"the handoff to {row.to_email} is cancelled and nothing was changed.",
                    thread_ts=job.card_ts if job else None,
                )
            )
        return cancelled

    async def _job(self, row: OnCallHandoff) -> Job | None:
        """The row's job (found by its interaction key while the row does not name it yet)."""
        if row.job_id:
            return await self.jobs.get(row.job_id)
        return await self.jobs.by_interaction_key(f"oncall:{row.id}")

    async def _settle(self, now: datetime) -> None:
        """Apply auto handoffs whose grace has passed; close rows whose job a person decided."""
        for row in await self.store.pending():
            job = await self.jobs.get(row.job_id) if row.job_id else None
            if job is None:
                continue
            applying = job.params.handoff is not None and job.params.handoff.phase is HandoffPhase.APPLY
            if job.state is JobState.CANCELLED:
                await self.store.update(row.id, state=CANCELLED, detail="cancelled")
            elif applying or job.state.terminal:
                await self.store.update(row.id, state=APPLIED, detail="confirmed")
            elif job.state is JobState.AWAITING_CONFIRM and not sum(job.params.plan().counts.values()):
                # Nothing to hand off: the preview says so and has no Confirm, so do not wait for one.
                await self._step(job, Step.CANCEL)
                await self.store.update(row.id, state=ENDED, detail="nothing to hand off")
            elif job.state is JobState.AWAITING_CONFIRM and row.due_at is not None and row.due_at <= now.timestamp():
                if await self._step(job, Step.CONFIRM):
                    await self.store.update(row.id, state=APPLIED, detail="applied after the grace period")
                    await self.notify(
                        Notice(
                            job.channel_id or "",
                            f":robot_face: Nobody cancelled within the grace period: handing off now (schedule "
                            f"*{row.schedule}*).",
                            thread_ts=job.card_ts,
                        )
                    )

    # ---- /triage oncall --------------------------------------------------------------------

    async def overview(self, name: str | None) -> a.OnCallOverview:
        """Each schedule's current and next responders (asked now) and its pending handoffs."""
        await self._settle(self.clock())  # a handoff decided since the last poll is not pending
        return a.OnCallOverview([await self._view(s) for s in self.config.schedules if name in (None, s.name)])

    async def _view(self, schedule: Schedule) -> a.ScheduleView:
        pending = [self._pending_line(row) for row in await self.store.pending(schedule.name)]
        try:
            roster = await self._roster(schedule, self.clock())
        except PlatformError as exc:
            self._failed(schedule, exc)
            return a.ScheduleView(schedule.name, schedule.source, schedule.mode, pending=pending,
                                  error=self.status[schedule.name])  # fmt: skip
        return a.ScheduleView(
            schedule.name,
            schedule.source,
            schedule.mode,
            current=[await self._who(r, schedule) for r in roster.current],
            next=[await self._who(r, schedule) for r in roster.next],
            pending=pending,
        )

    async def _who(self, responder: Responder, schedule: Schedule) -> str:
        try:
            user = await self._match(await self.team(), responder.email, responder, schedule)
        except (SlackApiError, SlackRequestError, TimeoutError):
            user = None
        return f"<@{user}>" if user else f"{responder.email} (not matched to a Slack user)"

    @staticmethod
    def _pending_line(row: OnCallHandoff) -> str:
        auto = f", applies <!date^{int(row.due_at or 0)}^{{date_short_pretty}} {{time}}|soon> unless cancelled"
        when = auto if row.due_at else ", waiting for Confirm"
        return f"{row.from_email} → {row.to_email} (shift from {row.shift_start}{when})"
