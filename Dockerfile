# Slack triage bot: a slim image that runs `triage-bot serve` as a non-root user.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    TRIAGE_DB=/data/triage.db \
    LOG_FORMAT=json \
    PORT=3000

WORKDIR /app
# Dependencies first, from the project's own metadata, so code edits reuse the layer.
COPY pyproject.toml README.md ./
COPY bot ./bot
RUN pip install . \
 && useradd --system --uid 10001 --home-dir /app triage \
 && mkdir -p /data && chown triage /data

USER triage
VOLUME ["/data"]
EXPOSE 3000

HEALTHCHECK --interval=30s --timeout=3s --start-period=10s --retries=3 \
  CMD python -c "import os, urllib.request; urllib.request.urlopen(f'http://127.0.0.1:{os.environ.get(\"PORT\", \"3000\")}/healthz', timeout=2)" || exit 1

CMD ["triage-bot", "serve"]
