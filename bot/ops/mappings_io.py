"""Bulk mapping files for the CLI: import (CSV / YAML) and export; verify is in ``mappings_verify``.

The file format is one row per Slack user: ``slack`` (a Slack user id such as
``U123``, a ``<@U123>`` mention, or an email resolved with ``users.lookupByEmail``)
and any of ``datadog`` (user UUID), ``kibana`` (profile uid), ``xpanse`` (email);
an empty cell leaves that platform unchanged. Every row is checked before
anything is written: a bad row is reported with its line number and reason, and
nothing is applied while any row is bad unless ``apply_good_rows`` is set.
"""

from __future__ import annotations

import asyncio
import csv
import io
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import structlog
import yaml
from pydantic import BaseModel, Field

from bot.errors import UsageError
from bot.models import Platform
from bot.ops.mappings_verify import Drift, SlackUserCheck, VerifyReport, verify_mappings
from bot.slack_web import SlackApiError, SlackWeb
from bot.store.db import Store
from bot.store.mappings import MappingStore, Source, validate_identity

log = structlog.get_logger(__name__)

# Re-exported: the CLI and the tests verify through this module.
__all__ = [
    "Drift",
    "ImportReport",
    "SlackUserCheck",
    "VerifyReport",
    "export_mappings",
    "import_mappings",
    "verify_mappings",
]

COLUMNS = ("slack", *(p.value for p in Platform))
_SLACK_ID = re.compile(r"^[UW][A-Z0-9]+$")
_MENTION = re.compile(r"^<@([UW][A-Z0-9]+)(?:\|[^>]*)?>$")


class RowError(BaseModel):
    """A row that cannot be imported, and why."""

    line: int
    reason: str


class ImportRow(BaseModel):
    """A row that can be imported: the Slack user and the values it sets."""

    line: int
    slack: str
    user_id: str
    values: dict[Platform, str]


class ImportReport(BaseModel):
    """What an import found and did."""

    path: str
    good: list[ImportRow] = Field(default_factory=list)
    errors: list[RowError] = Field(default_factory=list)
    applied: bool = False
    written: int = 0

    @property
    def ok(self) -> bool:
        return not self.errors

    def lines(self) -> list[str]:
        """The report as plain text lines for the CLI."""
        total = len(self.good) + len(self.errors)
        out = [f"{self.path}: {total} rows, {len(self.good)} good, {len(self.errors)} bad"]
        out += [f"  line {e.line}: {e.reason}" for e in sorted(self.errors, key=lambda e: e.line)]
        if self.applied:
            out.append(f"applied {len(self.good)} rows ({self.written} mappings written)")
        elif self.errors and self.good:
            out.append("nothing applied: fix the bad rows, or re-run with --apply-good-rows")
        elif self.errors:
            out.append("nothing applied")
        return out


def _as_mappings(store_or_mappings: Store | MappingStore) -> MappingStore:
    if isinstance(store_or_mappings, MappingStore):
        return store_or_mappings
    return MappingStore(store_or_mappings)


@dataclass
class _RawRow:
    line: int
    cells: dict[str, Any]


def _read_csv(text: str) -> list[_RawRow]:
    reader = csv.DictReader(io.StringIO(text), restkey="\0extra")
    if reader.fieldnames is None:
        return []
    header = [(h or "").strip().lower() for h in reader.fieldnames]
    reader.fieldnames = header
    _check_header(header, where="the CSV header (line 1)")
    rows = []
    for cells in reader:
        rows.append(_RawRow(line=reader.line_num, cells=dict(cells)))
    return rows


def _check_header(keys: list[str], *, where: str) -> None:
    unknown = [k for k in keys if k not in COLUMNS]
    if unknown or "slack" not in keys:
        problems = []
        if "slack" not in keys:
            problems.append("a `slack` column is required")
        if unknown:
            problems.append("unknown columns " + ", ".join(repr(k) for k in unknown))
        raise UsageError(f"{where}: " + "; ".join(problems) + f" (columns: {', '.join(COLUMNS)})")


def _read_yaml(text: str) -> list[_RawRow]:
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise UsageError(f"not valid YAML: {exc}") from exc
    if root is None or data is None:
        return []
    if not isinstance(root, yaml.SequenceNode) or not isinstance(data, list):
        raise UsageError("the YAML file must be a list of mappings, e.g. `- {slack: U123, datadog: <uuid>}`")
    rows = []
    for node, item in zip(root.value, data, strict=True):
        line = node.start_mark.line + 1
        if not isinstance(item, dict):
            rows.append(_RawRow(line=line, cells={"\0invalid": item}))
        else:
            cells = {str(k).strip().lower(): v for k, v in item.items()}
            rows.append(_RawRow(line=line, cells=cells))
    return rows


def _cell(value: Any) -> str | None:
    """A cell as stripped text; None when it is not text."""
    if value is None:
        return ""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return None
    return str(value).strip()


async def _user_for_email(slack: SlackWeb, email: str, cache: dict[str, str | RowError]) -> str | RowError:
    key = email.lower()
    if key not in cache:
        try:
            response = await slack.users_lookupByEmail(email=email)
            user = response.get("user") or {}
            cache[key] = str(user.get("id"))
        except SlackApiError as exc:
            error = exc.response.get("error")
            if error == "users_not_found":
                cache[key] = RowError(line=0, reason=f"no Slack user has the email {email}")
            else:
                hint = " (the bot needs users:read.email)" if error == "missing_scope" else ""
                cache[key] = RowError(line=0, reason=f"Slack refused users.lookupByEmail for {email}: {error}{hint}")
    return cache[key]


async def _check_row(
    raw: _RawRow,
    *,
    mappings: MappingStore,
    team_id: str,
    slack: SlackWeb,
    email_cache: dict[str, str | RowError],
) -> ImportRow | RowError:
    """One row validated: the Slack user found and every value well-formed and free."""
    cells = raw.cells
    if "\0invalid" in cells:
        return RowError(line=raw.line, reason="expected a mapping with a `slack` key")
    if cells.get("\0extra"):
        return RowError(line=raw.line, reason="more cells than columns in the header")
    unknown = sorted(k for k in cells if k not in COLUMNS)
    if unknown:
        return RowError(
            line=raw.line,
            reason=f"unknown keys {', '.join(unknown)} (expected {', '.join(COLUMNS)})",
        )
    problems: list[str] = []
    slack_cell = _cell(cells.get("slack"))
    user_id: str | None = None
    if not slack_cell:
        problems.append("the `slack` cell is empty (a Slack user id like U123, or an email)")
    elif (m := _MENTION.match(slack_cell)) or _SLACK_ID.match(slack_cell):
        user_id = m.group(1) if m else slack_cell
    elif "@" in slack_cell:
        found = await _user_for_email(slack, slack_cell, email_cache)
        if isinstance(found, RowError):
            problems.append(found.reason)
        else:
            user_id = found
    else:
        problems.append(f"{slack_cell!r} is neither a Slack user id (U…/W…) nor an email")
    values: dict[Platform, str] = {}
    for platform in Platform:
        text = _cell(cells.get(platform.value))
        if text is None:
            problems.append(f"the {platform.value} value must be text")
        elif text:
            try:
                values[platform] = validate_identity(platform, text)
            except UsageError as exc:
                problems.append(str(exc))
    if not values and not problems:
        problems.append("no datadog, kibana or xpanse value: nothing to map")
    if user_id is not None:
        for platform, value in values.items():
            owner = await mappings.find_by_value(platform, value, team_id=team_id)
            if owner is not None and owner[1] != user_id:
                problems.append(f"{platform.label} {value} is already mapped to <@{owner[1]}> (unmap it there first)")
    if problems:
        return RowError(line=raw.line, reason="; ".join(problems))
    assert user_id is not None and slack_cell
    return ImportRow(line=raw.line, slack=slack_cell, user_id=user_id, values=values)


async def import_mappings(
    store_or_mappings: Store | MappingStore,
    path: str | Path,
    *,
    team_id: str,
    slack: SlackWeb,
    apply_good_rows: bool = False,
    set_by: str | None = None,
) -> ImportReport:
    """Check every row of a CSV or YAML mapping file and apply them as 'admin' mappings in one
    transaction; with any bad row nothing is applied unless ``apply_good_rows``. Raises
    ``UsageError`` for an unreadable file, an unknown extension or a bad header."""
    mappings = _as_mappings(store_or_mappings)
    file = Path(path)
    suffix = file.suffix.lower()
    if suffix not in (".csv", ".yaml", ".yml"):
        raise UsageError(f"{file}: unknown format {suffix or '(none)'!r}; use .csv, .yaml or .yml")
    try:
        text = await asyncio.to_thread(file.read_text, encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read {file}: {exc}") from exc
    raws = _read_csv(text) if suffix == ".csv" else _read_yaml(text)

    report = ImportReport(path=str(file))
    email_cache: dict[str, str | RowError] = {}
    first_line_of_user: dict[str, int] = {}
    first_line_of_value: dict[tuple[Platform, str], int] = {}
    for raw in raws:
        checked = await _check_row(raw, mappings=mappings, team_id=team_id, slack=slack, email_cache=email_cache)
        if isinstance(checked, ImportRow):
            # Duplicates within the file: the first occurrence wins, later ones are errors.
            clash = []
            if checked.user_id in first_line_of_user:
                clash.append(f"<@{checked.user_id}> already appears on line {first_line_of_user[checked.user_id]}")
            for platform, value in checked.values.items():
                earlier = first_line_of_value.get((platform, value))
                if earlier is not None:
                    clash.append(f"{platform.label} {value} is also on line {earlier}")
            if clash:
                checked = RowError(line=raw.line, reason="; ".join(clash))
            else:
                first_line_of_user[checked.user_id] = raw.line
                for platform, value in checked.values.items():
                    first_line_of_value[(platform, value)] = raw.line
        if isinstance(checked, RowError):
            report.errors.append(checked)
        else:
            report.good.append(checked)

    if report.good and (not report.errors or apply_good_rows):
        report.written = await mappings.set_bulk(
            team_id,
            [(row.user_id, row.values) for row in report.good],
            source=Source.ADMIN,
            set_by=set_by,
        )
        report.applied = True
    log.info("mappings.imported", path=str(file), good=len(report.good), bad=len(report.errors), applied=report.applied)
    return report


async def export_mappings(
    store_or_mappings: Store | MappingStore,
    *,
    fmt: Literal["csv", "yaml"],
    team_id: str | None = None,
) -> str:
    """Every mapping (of ``team_id`` when given) as a file ``import_mappings`` reads back;
    raises ``UsageError`` for an unknown format."""
    if fmt not in ("csv", "yaml"):
        raise UsageError(f"unknown export format {fmt!r}: use csv or yaml")
    users = await _as_mappings(store_or_mappings).all(team_id=team_id)
    rows: list[dict[str, str]] = []
    for user in users:
        row = {"slack": user.user_id}
        for identity in user.identities:
            row[identity.platform.value] = identity.value
        rows.append(row)
    if fmt == "yaml":
        return yaml.safe_dump(rows, sort_keys=False, default_flow_style=False) if rows else "[]\n"
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(COLUMNS), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()
