"""The sandbox Slack's file uploads: the three steps ``files_upload_v2`` takes.

1. ``files.getUploadURLExternal`` (``filename``, ``length``) answers an ``upload_url`` on
   this server and a ``file_id``;
2. a POST of the raw bytes to that URL answers ``200 OK - <length>``;
3. ``files.completeUploadExternal`` (``files`` as JSON ``[{"id","title"}]``, and
   ``channel_id`` / ``thread_ts`` / ``initial_comment``) shares the uploaded files: the
   channel (or thread) gets a message carrying them, as on Slack.

``files.upload`` is retired (Slack stopped it in 2025); the sandbox answers it
``method_deprecated``. Uploaded files are kept in ``files`` with their content.
"""

from __future__ import annotations

import itertools
import json
from typing import Any

from aiohttp import web

from bot.sandbox.server import Recorded
from bot.sandbox.slack_types import Json, SlackEvent

UPLOAD_PREFIX = "/upload/v1/"


class SlackFiles:
    """Mixed into ``SlackSandbox``: upload URLs, the uploads themselves, their completion."""

    url: str
    bot_user_id: str
    bot_id: str
    team_id: str
    messages: dict[str, list[Json]]
    events: list[SlackEvent]

    def _init_files(self) -> None:
        self.files: dict[str, Json] = {}
        self._file_seq = itertools.count(1)

    def next_ts(self) -> str:  # pragma: no cover - SlackSandbox's
        raise NotImplementedError

    def keep(self, channel: str, message: Json) -> None:  # pragma: no cover - SlackSandbox's
        raise NotImplementedError

    def file_methods(self) -> dict[str, Any]:
        return {
            "files.getUploadURLExternal": self._files_get_upload_url_external,
            "files.completeUploadExternal": self._files_complete_upload_external,
            "files.upload": lambda args: {"ok": False, "error": "method_deprecated"},
        }

    def _files_get_upload_url_external(self, args: Json) -> Json:
        filename, length = str(args.get("filename") or ""), str(args.get("length") or "")
        if not filename or not length.isdigit():
            return {"ok": False, "error": "invalid_arguments"}
        file_id = f"F{next(self._file_seq):010d}"
        self.files[file_id] = {"id": file_id, "name": filename, "length": int(length), "content": None}
        return {"ok": True, "upload_url": f"{self.url}{UPLOAD_PREFIX}{file_id}", "file_id": file_id}

    def upload(self, path: str, req: Recorded) -> web.Response:
        """Step 2: the bytes for a file id handed out by step 1."""
        file = self.files.get(path.removeprefix(UPLOAD_PREFIX))
        if file is None or req.method != "POST":
            return web.Response(status=404, text="not_found")
        body = req.body
        content = body if isinstance(body, str) else json.dumps(body) if body is not None else ""
        file["content"] = content
        return web.Response(text=f"OK - {len(content.encode())}")

    def _files_complete_upload_external(self, args: Json) -> Json:
        try:
            wanted = json.loads(str(args.get("files") or ""))
        except ValueError:
            return {"ok": False, "error": "invalid_arguments"}
        if not isinstance(wanted, list) or not wanted:
            return {"ok": False, "error": "invalid_arguments"}
        shared: list[Json] = []
        for entry in wanted:
            file = self.files.get(str(entry.get("id", ""))) if isinstance(entry, dict) else None
            if file is None or file["content"] is None:
                return {"ok": False, "error": "file_not_found"}
            file["title"] = entry.get("title") or file["name"]
            shared.append({k: v for k, v in file.items() if k != "content"})
        channel = str(args.get("channel_id") or "")
        if channel:
            ts = self.next_ts()
            message: Json = {
                "type": "message",
                "text": str(args.get("initial_comment") or ""),
                "ts": ts,
                "user": self.bot_user_id,
                "bot_id": self.bot_id,
                "team": self.team_id,
                "upload": True,
                "files": shared,
            }
            if args.get("thread_ts"):
                message["thread_ts"] = str(args["thread_ts"])
            self.keep(channel, message)
            self.events.append(SlackEvent("post", channel, ts, message.get("thread_ts"), message["text"], []))
            for file in shared:
                self.files[file["id"]]["shares"] = {"channel": channel, "ts": ts}
        return {"ok": True, "files": [{"id": f["id"], "title": f["title"]} for f in shared]}
