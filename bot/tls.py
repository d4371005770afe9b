"""The one TLS context every outbound HTTP client of a process shares.

An ``httpx.AsyncClient`` built with the default ``verify=True`` loads the whole CA
bundle into a TLS context of its own: about 35 ms and over a megabyte of resident
memory each, and a process builds one per platform client and one for Slack. They
all verify servers the same way, so they share this context, built once, exactly as
httpx builds its default (``SSL_CERT_FILE`` or ``SSL_CERT_DIR`` when set, otherwise
certifi's bundle).
"""

from __future__ import annotations

import functools
import ssl

import httpx


@functools.cache
def client_context() -> ssl.SSLContext:
    """The process's verifying TLS client context (built on first use)."""
    return httpx.create_ssl_context()
