"""What each vendor operation needs of the bot's credential, and how a refusal reads.

Pure: no I/O, nothing from the bot. The platform clients hand their table to
``PlatformHttp``, which attaches the row of the operation that got a 401/402/403 to the
``PlatformAuthError`` (``missing``) and words its reason with ``refusal``, so an item line
says which permission to grant instead of "403 Forbidden". ``triage-bot check`` states
``WRITES`` for every configured platform.

Sources, per row: ``shared/contracts/datadog.yaml`` (each operation's ``x-permission``) and
NOTES §1; ``shared/contracts/kibana.yaml`` (the route privileges) and NOTES §2, §2.4, §6.4;
``shared/contracts/xpanse.yaml`` (Error402/Error403) and NOTES §3.4. Xpanse names no role
per operation, only "key lacks RBAC permission", so its rows say what the role must allow.
A new operation adds its row here; tests/unit/test_permissions.py fails until it does.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

__all__ = [
    "DATADOG",
    "DATADOG_ONCALL",
    "ELASTICSEARCH",
    "KIBANA",
    "PAGERDUTY",
    "WRITES",
    "XPANSE",
    "Permission",
    "refusal",
]


@dataclass(frozen=True)
class Permission:
    """What ``credential`` must carry for one operation: any one of ``names``, or ``what``."""

    credential: str
    names: tuple[str, ...] = ()
    what: str = ""

    @property
    def needs(self) -> str:
        """ "`a` (or `b`)", or "the Security › Alerts: All privilege (`ALERTS_API_ALL`)"."""
        codes = f"`{self.names[0]}`" + "".join(f" (or `{n}`)" for n in self.names[1:]) if self.names else ""
        if self.what:
            return self.what + (f" ({codes})" if codes else "")
        return codes

    @property
    def lacks(self) -> str:
        """ "the application key lacks `a` (or `b`)" — the sentence an item line shows."""
        return f"the {self.credential} lacks {self.needs}"


# ---------------------------------------------------------------- Datadog
# datadog.yaml x-permission (operator OR) per operation; the keys are the clients' operation names.
_DD_KEY = "application key"
_DD_FINDINGS_WRITE = Permission(_DD_KEY, ("security_monitoring_findings_write", "appsec_vm_write"))
_DD_FINDINGS_READ = Permission(_DD_KEY, ("security_monitoring_findings_read", "appsec_vm_read"))
DATADOG: Mapping[str, Permission] = {
    # UpdateFindingsAssignee, AttachCase, MuteSecurityFindings: NOTES §1.1, §1.2, §6.1.
    "update_findings_assignee": _DD_FINDINGS_WRITE,
    "attach_case": _DD_FINDINGS_WRITE,
    "mute_findings": _DD_FINDINGS_WRITE,
    # DetachCase is not in the contract (real/BEHAVIOUR.md §1.4); it is the same findings write as
    # AttachCase, so it needs the same permission.
    "detach_case": _DD_FINDINGS_WRITE,
    # ListFindings / SearchSecurityFindings: NOTES §1.3.
    "fetch_findings": _DD_FINDINGS_READ,
    "known_findings": _DD_FINDINGS_READ,
    "list_assigned": _DD_FINDINGS_READ,
    "check": _DD_FINDINGS_READ,
    # ListUsers, GetCase: NOTES §1.3.
    "list_users": Permission(_DD_KEY, ("user_access_read",)),
    "get_case": Permission(_DD_KEY, ("cases_read",)),
}

# ---------------------------------------------------------------- Kibana
# kibana.yaml route privileges: writes anyRequired ALERTS_API_ALL (Security › Alerts: All), the
# search only securitySolution (read), so a key can read and still be refused every write.
_KB_KEY = "API key"
_KB_ALERTS_ALL = Permission(_KB_KEY, ("ALERTS_API_ALL",), "the Security › Alerts: All privilege")
_KB_READ = Permission(_KB_KEY, ("securitySolution",), "the Security › Alerts: Read privilege")
KIBANA: Mapping[str, Permission] = {
    "assignees": _KB_ALERTS_ALL,  # SetAlertAssignees, NOTES §2.1
    "status": _KB_ALERTS_ALL,  # SetAlertsStatus, NOTES §2.2
    "tags": _KB_ALERTS_ALL,  # SetAlertTags, NOTES §6.4
    "note": Permission(_KB_KEY, ("notes_write",), "the Security › Notes: All privilege"),  # PersistNoteRoute
    "search": _KB_READ,  # SearchAlerts, NOTES §2.3
    "check": _KB_READ,
}
# NOTES §2.4: _suggest needs the read_security cluster privilege (manage_user_profile on 8.2–8.4).
_ES_PROFILES = Permission(
    "Elasticsearch API key", ("read_security",), "the read_security cluster privilege (manage_user_profile on 8.2–8.4)"
)
ELASTICSEARCH: Mapping[str, Permission] = {"es.profile_suggest": _ES_PROFILES, "es.profile_get": _ES_PROFILES}

# ---------------------------------------------------------------- Xpanse
# xpanse.yaml Error403 "key lacks the RBAC permission for this API" (no role names published).
_XP_KEY = "API key's role"
XPANSE: Mapping[str, Permission] = {
    "update_incident": Permission(_XP_KEY, what="the permission to edit incidents (update_incident)"),
    "get_incidents": Permission(_XP_KEY, what="the permission to view incidents (get_incidents)"),
    "get_users": Permission(_XP_KEY, what="the permission to view users (rbac/get_users)"),
    # GetIncidentExtraData, NOTES §6.5: the same incident view as get_incidents.
    "get_incident_extra_data": Permission(_XP_KEY, what="the permission to view incidents (get_incident_extra_data)"),
}

# ---------------------------------------------------------------- Schedule sources (on-call handoff)
# datadog.yaml: every On-Call operation needs on_call_read (NOTES §6.2); pagerduty.yaml
# x-pd-requires-scope per operation (NOTES §6.3). Keys are the sources' operation names.
DATADOG_ONCALL: Mapping[str, Permission] = {
    "GetScheduleOnCallResponders": Permission(_DD_KEY, ("on_call_read",)),
}
PAGERDUTY: Mapping[str, Permission] = {
    "listOnCalls": Permission("API key", ("oncalls.read",)),
    "getUser": Permission("API key", ("users.read",)),
}

# What every write of a platform needs: the line `triage-bot check` prints.
WRITES: Mapping[str, Permission] = {
    "datadog": DATADOG["update_findings_assignee"],
    "kibana": KIBANA["assignees"],
    "xpanse": XPANSE["update_incident"],
}

# What a 401 refuses: the credential that authenticates, per platform label.
_LOGIN = {
    "Datadog": "API key or application key",
    "Kibana": "API key",
    "Elasticsearch": "Elasticsearch API key",
    "Xpanse": "API key (or its key id)",
    "pagerduty": "API key",
}
_GENERIC = frozenset({"", "forbidden", "unauthorized", "error", "payment required", "access denied"})


def refusal(label: str, status: int, permission: Permission | None, vendor: str) -> str:
    """The reason a 401/402/403 reads with: who refused, why, then the vendor's own words.

    >>> refusal("Datadog", 403, DATADOG["attach_case"], "Forbidden")
    'Datadog refused (403): the application key lacks `security_monitoring_findings_write` (or `appsec_vm_write`)'
    """
    if status == 401:
        why = f"the {_LOGIN.get(label, 'credential')} was not accepted (wrong, revoked or expired)"
    elif status == 402:
        why = "the tenant lacks the licence this API needs (Xpanse: Cortex Xpanse Expander)"
    elif permission is not None:
        why = permission.lacks
    else:
        why = "the credential lacks a permission this request needs"
    said = vendor.strip()
    tail = "" if said.lower().rstrip(".") in _GENERIC else f" — {label} said: {said}"
    return f"{label} refused ({status}): {why}{tail}"
