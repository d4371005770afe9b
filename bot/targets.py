"""The target grammar: ``dd:…``, ``kibana:[space/]…``, ``xpanse:…`` and platform links.

Pure, and free of Slack: the ``/triage`` parser, the webhook ingester and the typed
button state all read targets through here. The id formats themselves live in
``bot.rules``.

Targets
-------
* ``dd:<id>`` / ``datadog:<id>`` — a Datadog security finding id. Finding ids are
  base64-like: letters, digits and ``+ / = ~ - _`` are all part of the id (a ``/``
  in a Datadog id is never a separator).
* ``kibana:<id>`` / ``kibana:<space>/<id>`` — an Elastic Security alert ``_id``,
  optionally in a Kibana space. ``Target.space`` holds the explicit space, or
  ``None`` for "the deployment's default space"; an explicit space equal to
  ``default_space`` is stored as ``None`` so one alert has one canonical key. Kibana
  ids never contain ``/``, so ``space/id`` is unambiguous.
* ``xpanse:<id>`` — a Cortex Xpanse incident id (digits).
* Prefixes are case-insensitive; several targets may be separated by spaces or
  commas, and platforms may be mixed.

Links accepted as targets (a ``<url>`` / ``<url|label>`` wrapping is removed and
``&amp;`` unescaped first):

* Datadog: any ``https://`` host that is a site from the contract's list
  (``datadoghq.com``, ``us3.datadoghq.com``, ``datadoghq.eu``, ``ddog-gov.com`` …) or
  a subdomain of one (``app.datadoghq.com``, ``myorg.datadoghq.com``), with the
  finding id in the query (``finding_id=``, ``findingId=`` or ``finding=``) or as
  the path segment after ``/findings/`` under ``/security/``. Query values are
  percent-decoded without turning ``+`` into a space, since ``+`` is part of ids.
* Kibana: any host, optional base path, optional ``/s/<space>``, then
  ``/app/security/alerts/redirect/<id>`` or ``/app/security/alerts?…`` with the id
  in ``alertId=``/``alert_id=``/``id=`` or in the rison ``flyout=`` state
  (``params:(id:'<id>'…``). No ``/s/`` means Kibana's space named ``default``.
* Xpanse: any non-Datadog host with ``/incident-view?caseId=<id>`` (also
  ``incidentId=``), ``/incident-view/<id>`` or ``/incidents/<id>``, the id numeric.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from typing import Any
from urllib.parse import unquote, urlsplit

from bot import rules
from bot.errors import UsageError
from bot.models import Platform, Target

__all__ = [
    "PLATFORM_WORDS",
    "TargetProblem",
    "extract_targets",
    "parse_target",
    "platform_word",
    "read_target",
    "target_from_link",
    "unescape",
]

PLATFORM_WORDS: dict[str, Platform] = {
    "dd": Platform.DATADOG,
    "datadog": Platform.DATADOG,
    "kibana": Platform.KIBANA,
    "xpanse": Platform.XPANSE,
}


def platform_word(word: str) -> Platform | None:
    """The platform a prefix or platform name names (``dd``, ``datadog``, …), any case."""
    return PLATFORM_WORDS.get(word.lower())


def unescape(text: str) -> str:
    """Undo the three text escapes chat messages carry (``&lt;`` ``&gt;`` ``&amp;``); never fails."""
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


class TargetProblem(ValueError):
    """Why one piece of text is not a target (callers turn it into a ``UsageError``)."""


def _normal_space(space: str | None, default_space: str | None) -> str | None:
    if space is None or space == default_space:
        return None
    return space


def _make_target(platform: Platform, raw_id: str, *, space: str | None, default_space: str | None) -> Target:
    try:
        if platform is Platform.KIBANA and space is not None:
            space = rules.normalise_kibana_space(space)
        item_id = rules.normalise_item_id(platform, raw_id)
    except UsageError as exc:
        raise TargetProblem(exc.message) from None
    if platform is Platform.KIBANA:
        return Target(platform=platform, id=item_id, space=_normal_space(space, default_space))
    return Target(platform=platform, id=item_id)


def _target_from_word(word: str, *, default_space: str | None) -> Target:
    """A ``prefix:id`` word as a target, or ``TargetProblem`` saying what is wrong."""
    prefix, colon, rest = word.partition(":")
    if not colon:
        raise TargetProblem(
            f"`{word}` is not a target: write `dd:<id>`, `kibana:<id>` or `xpanse:<id>`, or paste the item's link"
        )
    platform = platform_word(prefix)
    if platform is None:
        raise TargetProblem(f"`{prefix}:` is not a platform prefix: use `dd:`, `datadog:`, `kibana:` or `xpanse:`")
    if not rest:
        raise TargetProblem(f"`{word}` has no id after `{prefix}:`")
    space: str | None = None
    if platform is Platform.KIBANA and "/" in rest:
        space, _, rest = rest.partition("/")
        if not space or not rest:
            raise TargetProblem(f"`{word}`: write `kibana:<space>/<alert id>`")
    return _make_target(platform, rest, space=space, default_space=default_space)


def parse_target(text: str, *, default_space: str | None = rules.DEFAULT_KIBANA_SPACE) -> Target:
    """One target from ``dd:``/``kibana:``/``xpanse:`` text or a platform link (wrapped in
    ``<…>`` or not); raises ``UsageError`` saying what is wrong.

    With ``default_space=None`` a Kibana space is kept exactly as written, which
    makes ``parse_target(t.key, default_space=None) == t`` for every target.
    """
    try:
        return read_target(text.strip(), default_space=default_space)
    except TargetProblem as exc:
        raise UsageError(str(exc)) from None


def read_target(text: str, *, default_space: str | None) -> Target:
    """Like ``parse_target`` but raising ``TargetProblem``, for callers that add context."""
    if text.startswith("<") and text.endswith(">"):
        text = text[1:-1].partition("|")[0]
    text = unescape(text)
    if text.lower().startswith(("http://", "https://")):
        target = target_from_link(text, default_space=default_space)
        if target is None:
            raise TargetProblem(
                f"can't find a Datadog finding, Kibana alert or Xpanse incident id in the link {text} "
                "— use `dd:<id>`, `kibana:<id>` or `xpanse:<id>` instead"
            )
        return target
    return _target_from_word(text, default_space=default_space)


def _query(query: str) -> dict[str, str]:
    """Query parameters, first value wins; ``+`` stays ``+`` because ids contain it."""
    params: dict[str, str] = {}
    for pair in query.split("&"):
        key, _, value = pair.partition("=")
        if key:
            params.setdefault(unquote(key), unquote(value))
    return params


_DD_PATH = re.compile(r"/security/(?:.*/)?findings/(?P<id>[^/]+)/?$")
_KIBANA_PATH = re.compile(r"(?:/s/(?P<space>[^/]+))?/app/security/alerts(?:/redirect/(?P<id>[^/]+))?/?$")
_RISON_ID = re.compile(r"params:\((?:[^()]*?,)?(?:id|eventId):'?(?P<id>[A-Za-z0-9_.:-]+)")
_XPANSE_PATH = re.compile(r"/(?:incident-view|incidents)/(?P<id>[0-9]+)/?$")


def target_from_link(url: str, *, default_space: str | None = rules.DEFAULT_KIBANA_SPACE) -> Target | None:
    """The target a Datadog, Kibana or Xpanse link points at, or None when the link is not
    one of the forms in the module docstring or its id is malformed."""
    try:
        return _link(unescape(url.strip()), default_space=default_space)
    except ValueError:  # TargetProblem included
        return None


def _link(url: str, *, default_space: str | None) -> Target | None:
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if parts.scheme.lower() not in ("http", "https") or not host:
        return None
    params = _query(parts.query)
    path = unquote(parts.path) if parts.path else ""
    if rules.is_datadog_host(host):
        finding = params.get("finding_id") or params.get("findingId") or params.get("finding")
        if not finding:
            match = _DD_PATH.search(parts.path)  # segments decoded after the split
            finding = unquote(match.group("id")) if match else None
        if not finding:
            return None
        return _make_target(Platform.DATADOG, finding, space=None, default_space=default_space)
    kibana = _KIBANA_PATH.search(parts.path)
    if kibana:
        alert_id = kibana.group("id")
        alert_id = (
            unquote(alert_id) if alert_id else (params.get("alertId") or params.get("alert_id") or params.get("id"))
        )
        if not alert_id and "flyout" in params:
            rison = _RISON_ID.search(params["flyout"])
            alert_id = rison.group("id") if rison else None
        if not alert_id:
            return None
        # No /s/<space> in a Kibana URL means the space literally named "default".
        space = unquote(kibana.group("space")) if kibana.group("space") else rules.DEFAULT_KIBANA_SPACE
        return _make_target(Platform.KIBANA, alert_id, space=space, default_space=default_space)
    incident: str | None = None
    if path.rstrip("/").endswith("/incident-view"):
        incident = params.get("caseId") or params.get("incidentId")
    if incident is None:
        match = _XPANSE_PATH.search(path)
        incident = match.group("id") if match else None
    if incident:
        return _make_target(Platform.XPANSE, incident, space=None, default_space=default_space)
    return None


# Entities, bare links and prefix:id words, in text order.
_SCAN = re.compile(
    r"<(?P<entity>[^<>@#!\s][^<>]*)>"
    r"|(?P<url>https?://[^\s<>|]+)"
    r"|(?<![\w/:.=+~-])(?P<word>(?:dd|datadog|kibana|xpanse):[^\s<>`*,;|()\[\]{}\"']+)",
    re.IGNORECASE,
)
_SKIP_KEYS = frozenset({"type", "block_id", "action_id", "style", "user_id", "team", "channel_id"})


def _strings(node: Any) -> Iterator[str]:
    """Every string anywhere in nested blocks/attachments, in document order."""
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for key, value in node.items():
            if key not in _SKIP_KEYS:
                yield from _strings(value)
    elif isinstance(node, list | tuple):
        for item in node:
            yield from _strings(item)


def _scan(text: str, *, default_space: str | None) -> Iterator[Target]:
    for match in _SCAN.finditer(text):
        target: Target | None = None
        if match.group("entity") is not None:
            url = match.group("entity").partition("|")[0]
            target = target_from_link(url, default_space=default_space)
        elif match.group("url") is not None:
            target = target_from_link(match.group("url"), default_space=default_space)
        else:
            word = unescape(match.group("word")).rstrip(".!?:")
            try:
                target = _target_from_word(word, default_space=default_space)
            except TargetProblem:
                target = None
        if target is not None:
            yield target


def extract_targets(
    text: str,
    blocks: Sequence[dict[str, Any]] | None = None,
    *,
    attachments: Sequence[dict[str, Any]] | None = None,
    default_space: str | None = rules.DEFAULT_KIBANA_SPACE,
) -> list[Target]:
    """Every target named in a message: ``dd:``/``kibana:``/``xpanse:`` words and platform
    links in its text and in any string inside its blocks and attachments, de-duplicated,
    in order of first appearance. Text that is not a valid target is ignored; never raises."""
    found: dict[Target, None] = {}
    sources: list[str] = [text or ""]
    sources += _strings(list(blocks or []))
    sources += _strings(list(attachments or []))
    for source in sources:
        for target in _scan(source, default_space=default_space):
            found.setdefault(target, None)
    return list(found)
