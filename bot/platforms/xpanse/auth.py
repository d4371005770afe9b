"""Xpanse API keys: *standard* (the raw key in ``Authorization``) or *advanced* (a SHA-256
over key, nonce and timestamp, fresh for every attempt)."""

from __future__ import annotations

import hashlib
import secrets
import string
import time
from collections.abc import Callable, Generator

import httpx

_NONCE_ALPHABET = string.ascii_letters + string.digits


def new_nonce() -> str:
    """64 random characters from [A-Za-z0-9], as the advanced-key scheme requires."""
    return "".join(secrets.choice(_NONCE_ALPHABET) for _ in range(64))


class XpanseAuth(httpx.Auth):
    """Signs every request (every retry attempt too) with a standard or advanced Xpanse key."""

    def __init__(
        self,
        api_key: str,
        key_id: str,
        *,
        advanced: bool,
        nonce_factory: Callable[[], str] = new_nonce,
    ) -> None:
        self._api_key = api_key
        self._key_id = key_id
        self._advanced = advanced
        self._nonce_factory = nonce_factory

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        """Set the auth headers for this attempt; never fails."""
        request.headers["x-xdr-auth-id"] = self._key_id
        if self._advanced:
            nonce = self._nonce_factory()
            timestamp = str(int(time.time() * 1000))
            digest = hashlib.sha256(f"{self._api_key}{nonce}{timestamp}".encode()).hexdigest()
            request.headers["x-xdr-nonce"] = nonce
            request.headers["x-xdr-timestamp"] = timestamp
            request.headers["Authorization"] = digest
        else:
            request.headers["Authorization"] = self._api_key
        yield request
