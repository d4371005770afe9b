"""Reading Datadog's answers: error bodies, per-finding outcomes of a write, finding
states and users. Pure functions over decoded JSON (and the ``httpx.Response`` they came in)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import httpx

from bot.errors import PlatformError, PlatformNotFound, PlatformRateLimited
from bot.models import BatchResult, ItemResult, ItemState, Outcome, Platform, PlatformUser, Target
from bot.platforms.http import json_or_none


def parse_datadog_error(response: httpx.Response) -> str:
    """Readable text of a Datadog error body; accepts both shapes Datadog uses.

    ``{"errors": ["Forbidden"]}`` (the spec's APIErrorResponse) and JSON:API objects
    ``{"errors": [{"status","title","detail"}]}`` or ``[{"code","title"}]`` (what the findings
    and cases endpoints really return). Returns "" when the body is neither.
    """
    body = json_or_none(response)
    if not isinstance(body, dict):
        return ""
    errors = body.get("errors")
    if not isinstance(errors, list):
        return ""
    parts: list[str] = []
    for err in errors:
        if isinstance(err, str):
            text = err.strip()
        elif isinstance(err, dict):
            title = str(err.get("title") or err.get("code") or "").strip()
            detail = str(err.get("detail") or "").strip()
            text = f"{title}: {detail}" if title and detail and detail != title else (title or detail)
        else:
            text = ""
        if text:
            parts.append(text)
    return "; ".join(parts)


def chunks(items: Sequence[str], size: int) -> list[list[str]]:
    return [list(items[i : i + size]) for i in range(0, len(items), size)]


def failed_detail(exc: PlatformError) -> str:
    # The analyst sees this per item: make a rate limit recognisable as such.
    if isinstance(exc, PlatformRateLimited):
        return f"rate limited by Datadog: {exc.reason}"
    return exc.reason


def quote_query_value(value: str) -> str:
    # Log-search syntax treats = ~ - / + as special; a double-quoted value is literal.
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def all_failed(unique: dict[str, Target], chunk: list[str], exc: PlatformError) -> BatchResult:
    detail = failed_detail(exc)
    return BatchResult.of(
        ItemResult(target=unique[i], outcome=Outcome.FAILED, detail=detail, status=exc.status) for i in chunk
    )


def assignee_outcomes(
    unique: dict[str, Target], chunk: list[str], response: httpx.Response, assignee: str | None
) -> BatchResult:
    body = json_or_none(response)
    meta = body.get("meta") if isinstance(body, dict) else None
    meta = meta if isinstance(meta, dict) else {}

    def by_finding(key: str) -> dict[str, dict[str, Any]]:
        entries = meta.get(key) or []
        return {str(e["finding_id"]): e for e in entries if isinstance(e, dict) and e.get("finding_id")}

    failures, warnings = by_finding("failures"), by_finding("warnings")
    items: list[ItemResult] = []
    for item_id in chunk:
        target = unique[item_id]
        if item_id in failures:
            entry = failures[item_id]
            items.append(
                ItemResult(
                    target=target,
                    outcome=Outcome.FAILED,
                    detail=_entry_text(entry),
                    status=_entry_status(entry),
                )
            )
        elif item_id in warnings:
            entry = warnings[item_id]
            items.append(
                ItemResult(
                    target=target,
                    outcome=Outcome.WARNING,
                    detail=_entry_text(entry),
                    status=_entry_status(entry),
                    after=assignee,
                )
            )
        else:
            items.append(
                ItemResult(
                    target=target,
                    outcome=Outcome.DONE,
                    status=response.status_code,
                    after=assignee,
                )
            )
    return BatchResult.of(items)


def attach_outcomes(
    unique: dict[str, Target], ids: list[str], response: httpx.Response, fallback_key: str
) -> BatchResult:
    body = json_or_none(response)
    data = body.get("data") if isinstance(body, dict) else None
    attributes = data.get("attributes") if isinstance(data, dict) else None
    attributes = attributes if isinstance(attributes, dict) else {}
    case_key = attributes.get("key") or fallback_key
    insights = attributes.get("insights")
    # The recorded 200 lists every finding the case holds, those just sent included, so
    # when the list is there a finding missing from it was not attached: say so rather
    # than report it done. A response without the list (the spec example) proves nothing
    # more than the 200 itself.
    listed: set[str] | None = None
    if isinstance(insights, list):
        listed = {
            str(i.get("resource_id"))
            for i in insights
            if isinstance(i, dict) and i.get("type", "SECURITY_FINDING") == "SECURITY_FINDING"
        }
    items: list[ItemResult] = []
    for item_id in ids:
        if listed is not None and item_id not in listed:
            items.append(
                ItemResult(
                    target=unique[item_id],
                    outcome=Outcome.FAILED,
                    detail=(f"Datadog answered {response.status_code} but case {case_key} does not list this finding"),
                    status=response.status_code,
                )
            )
        else:
            items.append(
                ItemResult(
                    target=unique[item_id],
                    outcome=Outcome.DONE,
                    status=response.status_code,
                    after=case_key,
                )
            )
    return BatchResult.of(items)


def platform_user(user: dict[str, Any], attrs: dict[str, Any]) -> PlatformUser:
    return PlatformUser(
        platform=Platform.DATADOG,
        id=str(user.get("id")),
        email=str_or_none(attrs.get("email")),
        name=str_or_none(attrs.get("name")) or str_or_none(attrs.get("handle")),
        active=True,
    )


def finding_fields(finding: dict[str, Any]) -> dict[str, Any]:
    """The fields of one finding: ``attributes.attributes.custom`` as recorded, over the
    spec example's ``attributes.attributes`` level (kept as a fallback for older answers)."""
    attrs = as_dict(as_dict(finding.get("attributes")).get("attributes"))
    custom = attrs.get("custom")
    return {**attrs, **custom} if isinstance(custom, dict) else attrs


def tag_value(finding: dict[str, Any], name: str) -> str | None:
    """The value of tag ``name:value`` on a finding; ``none`` (unassigned) reads as None."""
    tags = as_dict(finding.get("attributes")).get("tags")
    for tag in tags if isinstance(tags, list) else []:
        if isinstance(tag, str) and tag.startswith(name + ":"):
            value = tag[len(name) + 1 :]
            return value if value and value != "none" else None
    return None


def finding_state(target: Target, finding: dict[str, Any], *, link: str) -> ItemState:
    """The ``ItemState`` of one finding from the search answer (fields under
    ``attributes.attributes.custom``; ``workflow.triage`` is absent while unassigned)."""
    attrs = finding_fields(finding)
    workflow = as_dict(attrs.get("workflow"))
    triage = as_dict(workflow.get("triage"))
    assignee = as_dict(triage.get("assignee"))
    integrations = as_dict(workflow.get("integrations"))
    cases = integrations.get("cases")
    # The schema documents @workflow.integrations.cases.{id,key} without saying whether
    # it is one object or a list of them: accept both, the first case wins.
    case = cases[0] if isinstance(cases, list) and cases else cases
    case = case if isinstance(case, dict) else {}
    # Unassigned findings carry tags assignee:none / assignee_id:none and no triage key.
    assignee_id = assignee.get("id") or tag_value(finding, "assignee_id")
    rule = as_dict(attrs.get("rule"))
    title = attrs.get("title") or rule.get("name")
    return ItemState(
        target=target,
        title=str(title or "").strip(),
        severity=str_or_none(attrs.get("severity")),
        status=str_or_none(attrs.get("status")),
        assignees=[str(assignee_id)] if assignee_id else [],
        assignee_name=str_or_none(assignee.get("name")),
        case=str_or_none(case.get("key") or case.get("id")),
        link=link,
    )


def case_uuid_of(body: Any) -> str | None:
    """``data.id`` of a GetCase answer (or one ``data[]`` item of a case search), if a string."""
    data = body.get("data") if isinstance(body, dict) else None
    case_uuid = data.get("id") if isinstance(data, dict) else None
    return case_uuid if isinstance(case_uuid, str) else None


def is_unknown_finding(exc: PlatformError) -> bool:
    """A whole-request 404 because one finding id is unknown (recorded for mute, detach and
    jira_issues: ``finding not found``), as opposed to an unknown case or assignee."""
    return isinstance(exc, PlatformNotFound) and "finding not found" in exc.reason.lower()


def _entry_text(entry: dict[str, Any]) -> str:
    title = str(entry.get("title") or "").strip()
    detail = str(entry.get("detail") or "").strip()
    if title and detail:
        return f"{title}: {detail}"
    return title or detail


def _entry_status(entry: dict[str, Any]) -> int | None:
    status = entry.get("status")
    try:
        return int(status) if status is not None else None
    except (TypeError, ValueError):
        return None


def as_dict(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def str_or_none(value: object) -> str | None:
    return str(value) if value not in (None, "") else None
