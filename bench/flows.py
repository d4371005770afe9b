"""The measured flows: platform calls per operation, the handoff (the ack flows are in bench.acks)."""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Sequence
from typing import Any

from bench.env import (
    ALICE,
    BOB,
    CHANNEL,
    DATADOG_CHUNK,
    DD_IDS,
    EMAILS,
    KB_IDS,
    NAMES,
    SPACES,
    XPANSE_PAGE,
    Config,
    Requests,
    Tenants,
    button_value,
)
from bench.procs import Server, item_states, reported, send, wait_job
from bot.models import Platform
from bot.platforms.kibana import MAX_BATCH as KIBANA_BATCH
from bot.slack.ids import ActionId

# ---- 2. platform calls per operation -----------------------------------------------------------


class Seeder:
    """Fresh items on the tenants, each id used once per run."""

    def __init__(self, tenants: Tenants) -> None:
        self.tenants = tenants
        self.n = 0

    def _next(self) -> int:
        self.n += 1
        return self.n

    def datadog(self, count: int, *, owner: str | None = None) -> list[str]:
        keys = []
        for _ in range(count):
            finding_id = f"opfinding{self._next():06d}Zz"
            self.tenants.dd.add_finding(finding_id, title="Op finding", assignee_id=DD_IDS[owner] if owner else None)
            keys.append(f"dd:{finding_id}")
        return keys

    def kibana(self, count: int, *, owner: str | None = None) -> list[str]:
        keys = []
        for i in range(count):
            space = SPACES[i % len(SPACES)]
            alert_id = f"opalert{self._next():06d}-a1b2c3d4e5"
            self.tenants.kibana.add_alert(alert_id, space=space, assignees=[KB_IDS[owner]] if owner else [])
            keys.append(f"kibana:{space}/{alert_id}")
        return keys

    def xpanse(self, count: int, *, owner: str | None = None) -> list[str]:
        keys = []
        for _ in range(count):
            incident_id = str(100000 + self._next())
            first, last = NAMES[owner] if owner else ("", "")
            self.tenants.xpanse.add_incident(
                incident_id,
                assigned_user_mail=EMAILS[owner] if owner else None,
                assigned_user_pretty_name=f"{first} {last}" if owner else None,
            )
            keys.append(f"xpanse:{incident_id}")
        return keys


def is_write(platform: Platform, method: str, path: str) -> bool:
    if platform is Platform.DATADOG:
        return method == "PATCH"
    if platform is Platform.KIBANA:
        return path.endswith(("/signals/assignees", "/signals/status"))
    return path.endswith("/update_incident/")


def min_writes(platform: Platform, keys: Sequence[str]) -> int:
    """The fewest write requests the vendors' APIs allow for assigning ``keys``."""
    if platform is Platform.DATADOG:
        return math.ceil(len(keys) / DATADOG_CHUNK)
    if platform is Platform.KIBANA:
        per_space = Counter(k.split(":", 1)[1].split("/", 1)[0] for k in keys)
        return sum(math.ceil(n / KIBANA_BATCH) for n in per_space.values())
    return len(keys)


class CallLog:
    """What each tenant received since a mark."""

    def __init__(self, tenants: Tenants) -> None:
        self.tenants = tenants
        self.marks = self._lengths()

    def _lengths(self) -> dict[str, int]:
        f = self.tenants
        return {
            "datadog": len(f.dd.requests),
            "kibana": len(f.kibana.requests),
            "es": len(f.es.requests),
            "xpanse": len(f.xpanse.requests),
            "slack": len(f.slack.calls),
        }

    def counts(self) -> dict[str, dict[str, int]]:
        f = self.tenants
        out: dict[str, dict[str, int]] = {}
        for platform, reqs in (
            (Platform.DATADOG, f.dd.requests),
            (Platform.KIBANA, f.kibana.requests),
            (Platform.XPANSE, f.xpanse.requests),
        ):
            new = reqs[self.marks[platform.value] :]
            writes = sum(1 for r in new if is_write(platform, r.method, r.path))
            out[platform.value] = {"writes": writes, "reads": len(new) - writes}
        out["kibana"]["reads"] += len(f.es.requests) - self.marks["es"]
        out["slack"] = {"calls": len(f.slack.calls) - self.marks["slack"]}
        return out


async def platform_calls(cfg: Config, tenants: Tenants, bot: Server, requests: Requests) -> list[dict[str, Any]]:
    assert bot.db is not None
    seed = Seeder(tenants)
    makers = {Platform.DATADOG: seed.datadog, Platform.KIBANA: seed.kibana, Platform.XPANSE: seed.xpanse}
    rows: list[dict[str, Any]] = []

    async def assign(keys: list[str]) -> tuple[dict[str, Any], float]:
        trigger = requests.trigger()
        started = time.perf_counter()
        resp = await send(
            bot, requests.command("assign " + " ".join(keys) + " to <@U0BOB|bob>", user=ALICE, trigger_id=trigger)
        )
        resp.raise_for_status()
        row = await wait_job(bot.db, reported, key=trigger, timeout=cfg.job_timeout_s)  # type: ignore[arg-type]
        return row, time.perf_counter() - started

    # One item per platform first, so Bob's identities are resolved and remembered before counting.
    await assign([makers[p](1)[0] for p in Platform])
    for platform in Platform:
        for n in cfg.call_sizes:
            keys = makers[platform](n)
            log = CallLog(tenants)
            row, wall = await assign(keys)
            counts = log.counts()
            states = item_states(bot.db, row["id"])
            rows.append(
                {
                    "platform": platform.value,
                    "n": n,
                    "writes": counts[platform.value]["writes"],
                    "min_writes": min_writes(platform, keys),
                    "reads": counts[platform.value]["reads"],
                    "other_platform_calls": sum(
                        v["writes"] + v["reads"] for k, v in counts.items() if k not in (platform.value, "slack")
                    ),
                    "slack_calls": counts["slack"]["calls"],
                    "items": states,
                    "applied": applied(tenants, keys, BOB),
                    "job_state": row["state"],
                    "wall_s": round(wall, 2),
                }
            )
            r = rows[-1]
            print(
                f"  calls {platform.value:8} N={n:<4} writes {r['writes']:4} (min {r['min_writes']:4}) "
                f"reads {r['reads']:3} applied {r['applied']}/{n}",
                flush=True,
            )
    return rows


def applied(tenants: Tenants, keys: Sequence[str], user: str) -> int:
    """How many of ``keys`` the tenants now hold as assigned to ``user`` (the writes really landed)."""
    count = 0
    for key in keys:
        prefix, _, rest = key.partition(":")
        if prefix == "dd":
            count += tenants.dd.findings[rest]["assignee_id"] == DD_IDS[user]
        elif prefix == "kibana":
            space, _, alert_id = rest.partition("/")
            count += tenants.kibana.assignees(alert_id, space) == [KB_IDS[user]]
        else:
            count += (tenants.xpanse.incidents[rest].assigned_user_mail or "").lower() == EMAILS[user]
    return count


# ---- 3. handoff -------------------------------------------------------------------------------------


async def handoff(
    cfg: Config,
    tenants: Tenants,
    bot: Server,
    requests: Requests,
    *,
    confirm_via: Server | None = None,
) -> dict[str, Any]:
    """``/triage handoff to @bob`` as Alice, then Confirm on the preview: time Confirm → job reported.

    ``confirm_via``: the replica the Confirm click goes to (a load balancer may pick another replica
    than the command's).
    """
    assert bot.db is not None
    n_dd, n_kb, n_xp = cfg.handoff
    seed = Seeder(tenants)
    seed.n = 500_000  # ids apart from the calls section's
    keys = seed.datadog(n_dd, owner=ALICE) + seed.kibana(n_kb, owner=ALICE) + seed.xpanse(n_xp, owner=ALICE)
    tenants.set_latency(cfg.latency_s)
    tenants.xpanse.rate_limit = cfg.xpanse_rate  # the sandbox tenant refuses (429) what exceeds the limit
    throttled_before = tenants.xpanse.throttled
    try:
        trigger = requests.trigger()
        started = time.perf_counter()
        resp = await send(bot, requests.command("handoff to <@U0BOB|bob>", user=ALICE, trigger_id=trigger))
        resp.raise_for_status()
        row = await wait_job(
            bot.db,
            lambda r: r["state"] == "awaiting_confirm" and r["card_ts"] is not None,
            key=trigger,
            timeout=cfg.job_timeout_s,
        )
        collect_s = time.perf_counter() - started
        preview = tenants.slack.message(CHANNEL, row["card_ts"])
        assert preview is not None, "the handoff preview was not posted"
        value = button_value(preview, ActionId.HANDOFF_CONFIRM)
        log = CallLog(tenants)
        started = time.perf_counter()
        confirm = requests.click(ActionId.HANDOFF_CONFIRM, value, user=ALICE, message=preview)
        click = await send(confirm_via or bot, confirm)
        ack_ms = (time.perf_counter() - started) * 1000
        click.raise_for_status()
        row = await wait_job(bot.db, reported, job_id=row["id"], timeout=cfg.job_timeout_s)
        wall = time.perf_counter() - started
    finally:
        tenants.set_latency(0.0)
        tenants.xpanse.rate_limit = None
    counts = log.counts()
    xp_calls = counts["xpanse"]["reads"] + counts["xpanse"]["writes"]
    xp_endpoints = Counter(
        r.path.rstrip("/").rsplit("/", 1)[-1] for r in tenants.xpanse.requests[log.marks["xpanse"] :]
    )
    xp_min = math.ceil(n_xp / XPANSE_PAGE) + n_xp
    # Every Xpanse request waits for the client's limiter (one per 1/rate s, evenly spaced), and the
    # updates can only follow the read that says what each incident holds; Datadog's and Kibana's
    # few batch requests overlap with that. The last response lands one latency after its send.
    bound = max((xp_min - 1) / cfg.xpanse_rate + cfg.latency_s, cfg.latency_s)
    return {
        "items": {"datadog": n_dd, "kibana": n_kb, "xpanse": n_xp},
        "latency_s": cfg.latency_s,
        "xpanse_rate": cfg.xpanse_rate,
        "flow": "slack: /triage handoff to @bob, then the Confirm button",
        "collect_s": round(collect_s, 2),
        "confirm_ack_ms": round(ack_ms, 1),
        "wall_s": round(wall, 2),
        "bound_s": round(bound, 2),
        "ratio": round(wall / bound, 3),
        "bound_formula": "(ceil(Nx/100) + Nx - 1) / rate + latency",
        "calls": counts,
        "xpanse_calls": xp_calls,
        "xpanse_min_calls": xp_min,
        "xpanse_calls_by_endpoint": dict(xp_endpoints),
        "xpanse_throttled_429": tenants.xpanse.throttled - throttled_before,
        "job_state": row["state"],
        "item_states": item_states(bot.db, row["id"]),
        "applied": applied(tenants, keys, BOB),
        "total": len(keys),
    }
