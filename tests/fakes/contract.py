"""The contract check the platform fakes put in front of the sandbox tenants.

Each platform fake is ``ContractServer`` mixed into a ``bot.sandbox`` tenant: the
tenant (a real aiohttp server on 127.0.0.1, ephemeral port) records what it
receives, keeps the vendor's state and answers as the vendor does, and can be told
to fail (``fail``: status codes, slow answers, dropped connections); this mixin
validates method, path, parameters, headers, security and body of every request
against ``../shared/contracts/<name>.yaml`` (openapi-core) before the tenant sees it.
A request the vendor schema would reject is answered 400 and kept in
``violations``; the test fixtures assert that list is empty, so a contract
violation fails the test.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from aiohttp import web
from openapi_core import OpenAPI
from openapi_core.datatypes import RequestParameters
from werkzeug.datastructures import Headers, ImmutableMultiDict

from bot.sandbox.server import Fault, Recorded

__all__ = ["ContractServer", "Fault", "Recorded", "load_contract", "validate"]

CONTRACTS = Path(__file__).resolve().parents[3] / "shared" / "contracts"


@cache
def load_contract(name: str) -> OpenAPI:
    """Parse ``shared/contracts/<name>.yaml`` once per test session."""
    path = CONTRACTS / f"{name}.yaml"
    if not path.exists():
        raise FileNotFoundError(f"contract {path} is missing: tests need ../shared beside the repo")
    return OpenAPI.from_file_path(str(path))


class _OpenAPIRequest:
    """The openapi-core request protocol over a received aiohttp request."""

    def __init__(self, *, host_url: str, path: str, request: web.Request, body: bytes) -> None:
        self.host_url = host_url
        self.path = path
        self.method = request.method.lower()
        self.body = body or None
        self.content_type = (request.headers.get("Content-Type") or "").lower()
        self.parameters = RequestParameters(
            query=ImmutableMultiDict(list(request.query.items())),
            header=Headers(list(request.headers.items())),
            cookie=ImmutableMultiDict(list(request.cookies.items())),
        )


class ContractServer:
    """Mixin over a sandbox tenant: check every request against ``shared/contracts/<contract>.yaml``.

    ``class DatadogFake(ContractServer, DatadogSandbox)``: the tenant does the vendor's work,
    this answers a request the vendor schema would reject 400 and keeps it in ``violations``.
    """

    contract: str = ""
    url: str
    requests: list[Recorded]
    violations: list[str]

    def calls(self, path_part: str = "", method: str | None = None) -> list[Recorded]:
        """Requests received whose path contains ``path_part`` (and with ``method``)."""
        return [r for r in self.requests if path_part in r.path and (method is None or r.method == method.upper())]

    def contract_location(self, path: str) -> tuple[str, str]:
        """Map a received path to (server URL in the contract, path below it)."""
        return self.url, path

    async def check(self, request: web.Request, req: Recorded, raw: bytes) -> web.StreamResponse | None:
        host_url, sub_path = self.contract_location(request.path)
        problem = validate(self.contract, host_url, sub_path, request, raw)
        if problem:
            self.violations.append(f"{request.method} {request.path}: {problem}")
            return web.json_response({"contract_violation": problem}, status=400)
        return None


def validate(contract: str, host_url: str, path: str, request: web.Request, raw: bytes) -> str | None:
    """What is wrong with ``request`` under ``contract`` (None: nothing)."""
    openapi = load_contract(contract)
    oreq = _OpenAPIRequest(host_url=host_url, path=path, request=request, body=raw)
    try:
        openapi.validate_request(oreq)
    except Exception as exc:  # every validation failure is a contract violation
        detail = "; ".join(str(e) for e in getattr(exc, "schema_errors", []) or [])
        cause = exc.__cause__
        extra = f" ({cause})" if cause and not detail else ""
        return f"{type(exc).__name__}: {exc}{extra} {detail}".strip()
    return None
