#!/usr/bin/env bash
# Build the bot's container image on a Debian machine without a Docker engine or an
# image registry, then start it and ask it /healthz. A manual check, not part of CI.
#
#   sudo scripts/build-image.sh                 # builds triage-bot:local
#   sudo scripts/build-image.sh my/triage:1.2   # another name
#
# What it does:
#   1. installs buildah and debootstrap from apt if they are missing;
#   2. makes a local base image (localhost/triage-base:bookworm): Debian bookworm with
#      python3, python3-venv, python3-pip and ca-certificates, bootstrapped from the
#      Debian mirror this machine's apt uses. It is kept in buildah's storage and
#      reused by later runs (REBUILD_BASE=1 makes it anew);
#   3. builds the Dockerfile on that base (--build-arg BASE_IMAGE=...), with buildah's
#      chroot isolation and vfs storage, so it needs no daemon and no overlay mounts.
#      If this machine reaches PyPI through a TLS-intercepting proxy, the host's CA
#      bundle (CA_BUNDLE, default /etc/ssl/certs/ca-certificates.crt) is mounted over the
#      base's own bundle for the build's RUN steps only and named in PIP_CERT; the image
#      keeps Debian's bundle;
#   4. starts the image: `triage-bot serve --role split` (the image's default: the web
#      process and its worker child; SMOKE_ROLE=all for one process) with a dummy
#      SLACK_BOT_TOKEN and SLACK_SIGNING_SECRET and TRIAGE_DB in /tmp, and prints what
#      /healthz and /readyz answer. serve asks Slack's auth.test once at start and
#      refuses to start when that fails, so the check points SLACK_API_URL at the
#      bot's own sandbox Slack API (bot.sandbox.slack), run inside the same container
#      on 127.0.0.1: nothing leaves the machine;
#   5. removes its working containers; the base and the built image stay (remove them
#      with `buildah rmi`).
#
# Needs root (debootstrap, buildah's chroot isolation), about 1 GB of disk in
# /var/lib/containers for vfs storage, and the Debian mirror and PyPI reachable.
# Settings: MIRROR (a Debian mirror URL; default: the one apt uses), REBUILD_BASE=1,
# CA_BUNDLE (empty: no CA bundle for the build), SMOKE_ROLE (split or all), SMOKE_PORT
# (default 3123).
set -euo pipefail
cd "$(dirname "$0")/.."

IMAGE="${1:-triage-bot:local}"
BASE_IMAGE="localhost/triage-base:bookworm"
CA_BUNDLE="${CA_BUNDLE-/etc/ssl/certs/ca-certificates.crt}"
SMOKE_PORT="${SMOKE_PORT:-3123}"
SMOKE_ROLE="${SMOKE_ROLE:-split}"
export STORAGE_DRIVER=vfs BUILDAH_ISOLATION=chroot

started=$(date +%s)
step() { printf '\n== %s (%ds)\n' "$*" "$(($(date +%s) - started))"; }

if [ "$(id -u)" -ne 0 ]; then
  echo "build-image.sh: run as root (debootstrap and buildah's chroot isolation need it)" >&2
  exit 1
fi

# ---- 1. tools ----------------------------------------------------------------------
missing=()
command -v buildah >/dev/null || missing+=(buildah)
command -v debootstrap >/dev/null || missing+=(debootstrap)
if [ ${#missing[@]} -gt 0 ]; then
  step "installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
buildah --version

# ---- 2. base image -----------------------------------------------------------------
debian_mirror() {
  # The first bookworm source apt uses (deb822 .sources files, then one-line .list files).
  local found
  found=$(awk '
    /^[[:space:]]*$/ { if (uris != "" && suites ~ /(^| )bookworm( |$)/) { print uris; exit } uris = ""; suites = ""; next }
    /^URIs:/ { uris = $2 }
    /^Suites:/ { $1 = ""; suites = $0 " " }
    END { if (uris != "" && suites ~ /(^| )bookworm( |$)/) print uris }
  ' /etc/apt/sources.list.d/*.sources 2>/dev/null | head -n 1)
  if [ -z "$found" ]; then
    found=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null \
      | sed -E 's/\[[^]]*\]//' | awk '$1 == "deb" && $3 == "bookworm" { print $2; exit }')
  fi
  echo "${found:-http://deb.debian.org/debian}"
}

if [ "${REBUILD_BASE:-0}" = 1 ] && buildah inspect --type image "$BASE_IMAGE" >/dev/null 2>&1; then
  buildah rmi "$BASE_IMAGE" >/dev/null
fi
if buildah inspect --type image "$BASE_IMAGE" >/dev/null 2>&1; then
  step "base image $BASE_IMAGE already built, reusing it"
else
  MIRROR="${MIRROR:-$(debian_mirror)}"
  step "bootstrapping Debian bookworm from $MIRROR"
  rootfs=$(mktemp -d /var/tmp/triage-base.XXXXXX)
  trap 'rm -rf "$rootfs"' EXIT
  debootstrap --variant=minbase --include=python3,python3-venv,python3-pip,ca-certificates \
    bookworm "$rootfs" "$MIRROR" >"$rootfs.log" 2>&1 || {
    tail -n 20 "$rootfs.log" >&2
    exit 1
  }
  rm -f "$rootfs.log"
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
  step "committing $BASE_IMAGE"
  base=$(buildah from scratch)
  mnt=$(buildah mount "$base")
  cp -a "$rootfs"/. "$mnt"/
  buildah umount "$base" >/dev/null
  buildah config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    --env LANG=C.UTF-8 --cmd /bin/bash "$base"
  buildah commit --quiet "$base" "$BASE_IMAGE" >/dev/null
  buildah rm "$base" >/dev/null
  rm -rf "$rootfs"
  trap - EXIT
fi

# ---- 3. the image ------------------------------------------------------------------
step "building $IMAGE from Dockerfile on $BASE_IMAGE"
ca_args=()
if [ -n "$CA_BUNDLE" ]; then
  # For this machine's network only: pip in the build trusts the host's CA bundle.
  # Mounted over a file the base already has, so the build leaves nothing behind.
  ca_args=(--volume "$CA_BUNDLE:/etc/ssl/certs/ca-certificates.crt:ro"
    --build-arg PIP_CERT=/etc/ssl/certs/ca-certificates.crt)
fi
build_started=$(date +%s)
buildah build --isolation chroot --format docker --layers=false \
  --build-arg BASE_IMAGE="$BASE_IMAGE" "${ca_args[@]}" \
  --tag "$IMAGE" --file Dockerfile .
echo "built $IMAGE in $(($(date +%s) - build_started))s"

# ---- 4. start it and ask /healthz --------------------------------------------------
step "starting $IMAGE: triage-bot serve --role $SMOKE_ROLE, Slack API from the sandbox"
ctr=$(buildah from "$IMAGE")
trap 'buildah rm "$ctr" >/dev/null 2>&1 || true' EXIT

# Runs inside the container as the image's user: a sandbox Slack API on 127.0.0.1,
# then `triage-bot serve` against it, then /healthz and /readyz, then SIGTERM.
read -r -d '' SMOKE <<'PY' || true
import asyncio, json, os, signal, sys, time, urllib.request
from bot.sandbox.slack import SlackSandbox

PORT = os.environ["PORT"]

def get(path):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{PORT}{path}", timeout=2) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()

async def main():
    async with SlackSandbox(token=os.environ["SLACK_BOT_TOKEN"]) as slack:
        env = dict(os.environ, SLACK_API_URL=f"{slack.url}/api/")
        t0 = time.monotonic()
        role = os.environ["SMOKE_ROLE"]
        proc = await asyncio.create_subprocess_exec("triage-bot", "serve", "--role", role, env=env)
        status = None
        while time.monotonic() - t0 < 30 and proc.returncode is None:
            try:
                status, body = await asyncio.to_thread(get, "/healthz")
                break
            except OSError:
                await asyncio.sleep(0.2)
        if status is None:
            print("smoke: /healthz never answered", file=sys.stderr)
            if proc.returncode is None:
                proc.kill()
            await proc.wait()
            return 1
        print(f"smoke: GET /healthz -> {status} {body} after {time.monotonic() - t0:.1f}s")
        ready = (None, "")
        for _ in range(50):
            ready = await asyncio.to_thread(get, "/readyz")
            if ready[0] == 200:
                break
            await asyncio.sleep(0.2)
        print(f"smoke: GET /readyz -> {ready[0]} {ready[1]}")
        print(f"smoke: Slack API calls at start: {sorted({c.method for c in slack.calls})}")
        proc.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(proc.wait(), 30)
        print(f"smoke: serve exited {code} on SIGTERM")
        return 0 if status == 200 and ready[0] == 200 and code == 0 else 1

sys.exit(asyncio.run(main()))
PY

set +e
buildah run --isolation chroot \
  --env SLACK_BOT_TOKEN=xoxb-smoke-test \
  --env SLACK_SIGNING_SECRET=smoke-test-signing-secret \
  --env TRIAGE_DB=/tmp/smoke.db \
  --env PORT="$SMOKE_PORT" \
  --env SMOKE_ROLE="$SMOKE_ROLE" \
  --env LOG_LEVEL=warning \
  "$ctr" -- python3 -c "$SMOKE"
result=$?
set -e

# ---- 5. clean up -------------------------------------------------------------------
buildah rm "$ctr" >/dev/null
trap - EXIT
if [ "$result" -eq 0 ]; then
  step "OK: $IMAGE built and answered /healthz"
else
  step "FAILED: $IMAGE did not start and answer (exit $result)"
fi
buildah images --format '{{.Name}}:{{.Tag}} {{.Size}}' | grep -E "triage" || true
exit "$result"
