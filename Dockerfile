# Slack triage bot: a slim image that runs `triage-bot serve` as a non-root user.
#
# Everything installs from requirements.lock with pinned hashes (scripts/lock.sh
# regenerates it), then the bot itself without resolving anything more. The base is a
# build argument so that any Debian-based image with Python 3.11 and venv will do.
ARG BASE_IMAGE=python:3.11-slim
FROM ${BASE_IMAGE}

# The path of a CA bundle for pip during the build, for networks that intercept TLS;
# empty by default (pip uses its own bundle). A build argument: the running image's
# environment does not have it.
ARG PIP_CERT=

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    TRIAGE_DB=/data/triage.db \
    LOG_FORMAT=json \
    PORT=3000

WORKDIR /app
# Dependencies first, from the lock alone, so code edits reuse the layer.
COPY requirements.lock ./
RUN python3 -m venv /opt/venv \
 && pip install --require-hashes --no-deps -r requirements.lock

# The bot, built with the locked setuptools and wheel: nothing unpinned is downloaded.
COPY pyproject.toml README.md ./
COPY bot ./bot
RUN pip install --no-deps --no-build-isolation . \
 && useradd --system --uid 10001 --home-dir /app triage \
 && mkdir -p /data && chown triage /data

USER triage
VOLUME ["/data"]
EXPOSE 3000

HEALTHCHECK --interval=30s --timeout=3s --start-period=10s --retries=3 \
  CMD python3 -c "import os, urllib.request; urllib.request.urlopen(f'http://127.0.0.1:{os.environ.get(\"PORT\", \"3000\")}/healthz', timeout=2)" || exit 1

CMD ["triage-bot", "serve"]
