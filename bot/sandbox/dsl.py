"""The Elasticsearch query DSL subset the Kibana client sends, evaluated over alert ``_source`` s.

``ids``, ``term``/``terms``, ``bool.filter``/``must``/``should``/``must_not``, ``range`` and
``match_all``; ``sort`` keys and ``_source`` filtering. Anything else raises
``UnsupportedQuery`` so that a test cannot pass on a silently wrong answer.
"""

from __future__ import annotations

from typing import Any


class UnsupportedQuery(ValueError):
    """The client sent query DSL the sandbox does not implement (a 400, noted as a violation)."""


def values(source: dict[str, Any], field: str) -> list[Any]:
    if field == "_id":
        field = "kibana.alert.uuid"
    value = source.get(field)
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]


def one_field(clause: Any, kind: str) -> tuple[str, Any]:
    if not isinstance(clause, dict) or len(clause) != 1:
        raise UnsupportedQuery(f"{kind} needs exactly one field, got {clause!r}")
    return next(iter(clause.items()))


def matches(query: Any, source: dict[str, Any]) -> bool:
    """Evaluate the supported query DSL subset against one alert ``_source``."""
    if query is None:
        return True
    if not isinstance(query, dict) or len(query) != 1:
        raise UnsupportedQuery(f"a query must have exactly one clause, got {query!r}")
    kind, spec = next(iter(query.items()))
    if kind == "match_all":
        return True
    if kind == "ids":
        return source.get("kibana.alert.uuid") in set(spec.get("values") or [])
    if kind == "term":
        field, value = one_field(spec, "term")
        if isinstance(value, dict):
            value = value.get("value")
        return value in values(source, field)
    if kind == "terms":
        field, wanted = one_field(spec, "terms")
        if not isinstance(wanted, list):
            raise UnsupportedQuery(f"terms needs a list, got {wanted!r}")
        return any(v in wanted for v in values(source, field))
    if kind == "range":
        field, bounds = one_field(spec, "range")
        ops = {
            "gt": lambda a, b: a > b,
            "gte": lambda a, b: a >= b,
            "lt": lambda a, b: a < b,
            "lte": lambda a, b: a <= b,
        }
        unknown = set(bounds) - set(ops) - {"format"}
        if unknown:
            raise UnsupportedQuery(f"range options {sorted(unknown)} not supported")
        return any(all(ops[op](v, bound) for op, bound in bounds.items() if op in ops) for v in values(source, field))
    if kind == "bool":
        unknown = set(spec) - {"filter", "must", "should", "must_not", "minimum_should_match"}
        if unknown:
            raise UnsupportedQuery(f"bool options {sorted(unknown)} not supported")

        def clauses(key: str) -> list[Any]:
            raw = spec.get(key) or []
            return raw if isinstance(raw, list) else [raw]

        if not all(matches(c, source) for c in clauses("filter") + clauses("must")):
            return False
        if any(matches(c, source) for c in clauses("must_not")):
            return False
        should = clauses("should")
        if should:
            needed = spec.get("minimum_should_match", 1 if not (clauses("filter") or clauses("must")) else 0)
            return sum(matches(c, source) for c in should) >= int(needed)
        return True
    raise UnsupportedQuery(f"query type {kind!r} is not implemented by the sandbox")


def sort_keys(sort: Any) -> list[tuple[str, bool]]:
    """[(field, descending)] from "f", {"f": "desc"}, {"f": {"order": …}} or a list of those."""
    items = sort if isinstance(sort, list) else [sort] if sort else []
    keys: list[tuple[str, bool]] = []
    for item in items:
        if isinstance(item, str):
            keys.append((item, False))
            continue
        field, order = one_field(item, "sort")
        if isinstance(order, dict):
            order = order.get("order", "asc")
        keys.append((field, str(order).lower() == "desc"))
    return keys


def filter_source(source: dict[str, Any], wanted: Any) -> dict[str, Any]:
    if wanted is None or wanted is True or wanted == "*":
        return dict(source)
    if wanted is False:
        return {}
    fields = [wanted] if isinstance(wanted, str) else list(wanted)
    return {k: v for k, v in source.items() if any(k == f or k.startswith(f + ".") for f in fields)}
