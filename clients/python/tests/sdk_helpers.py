"""Test helpers for the SDK (a module with a unique name, so that it never collides with
the repository's root ``conftest``).

* :class:`FakeServer`: an in-process fake of the server's ingest and direct-call
  endpoints, served through ``httpx.MockTransport`` (no sockets, controllable failures).
* :class:`SdkServer`: a real ``tether serve`` subprocess on a free port with a temp DB;
  it can be killed (SIGKILL) and restarted on the same DB for the outage drills.
"""

from __future__ import annotations

import json
import threading
from typing import Any

import httpx


def envelope(data: Any, status: int = 200, *, operation: str = "test") -> httpx.Response:
    """A success reply in the server's envelope."""
    body = {
        "ok": True,
        "service": "tether",
        "operation": operation,
        "correlation_id": "c-1",
        "duration_ms": 0.1,
        "data": data,
        "error": None,
    }
    return httpx.Response(status, json=body)


def error(
    status: int, code: str, message: str = "", headers: dict[str, str] | None = None
) -> httpx.Response:
    """An error reply in the server's envelope."""
    body = {
        "ok": False,
        "service": "tether",
        "operation": "test",
        "correlation_id": "c-err",
        "duration_ms": 0.1,
        "data": None,
        "error": {"code": code, "message": message or code, "details": None},
    }
    return httpx.Response(status, json=body, headers=headers)


class FakeServer:
    """Just enough of Tether's HTTP API, with switches for outages.

    It also plays a *buggy* server for the poison tests: one that refuses or crashes on
    a particular event while every other request works.

    Attributes:
        down: Raise ``httpx.ConnectError`` for every request.
        fail_next: Statuses (with optional ``Retry-After``) to answer the next requests with.
        fail_always: Answer every request with this status (a sick server), or ``None``.
        reject_kind: Answer ``reject_status`` (422) to any batch containing an event of
            this kind.
        reject_status: Status for ``reject_kind`` (e.g. 404, 409).
        crash_kind: Answer 500 to any batch containing an event of this kind (a server
            bug triggered by one payload; other requests, the empty batch too, work).
        requests: Every request seen (method, path, headers, body).

    Like the real server, a batch whose session descriptor names an unknown parent is
    refused whole with 404 ``not_found``.
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.down = False
        self.fail_next: list[tuple[int, str | None]] = []
        self.fail_always: int | None = None
        self.reject_kind: str | None = None
        self.reject_status = 422
        self.crash_kind: str | None = None
        self.requests: list[tuple[str, str, httpx.Headers, Any]] = []
        self.sessions: dict[str, dict[str, Any]] = {}
        self.ended: dict[str, str] = {}
        self.events: dict[str, list[dict[str, Any]]] = {}
        self.keys: dict[str, int] = {}
        self.state: dict[str, tuple[dict[str, Any], int]] = {}
        self.goals: dict[str, dict[str, Any]] = {}
        self.memories: dict[str, dict[str, Any]] = {}

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    def all_events(self) -> list[dict[str, Any]]:
        with self.lock:
            return [e for events in self.events.values() for e in events]

    def handle(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content) if request.content else None
        with self.lock:
            self.requests.append((request.method, request.url.path, request.headers, body))
            if self.down:
                raise httpx.ConnectError("connection refused", request=request)
            if self.fail_next:
                status, retry_after = self.fail_next.pop(0)
                return error(
                    status,
                    "unavailable",
                    headers={"Retry-After": retry_after} if retry_after else None,
                )
            if self.fail_always is not None:
                return error(self.fail_always, "internal" if self.fail_always == 500 else "down")
            return self._route(request.method, request.url.path, request.headers, body)

    def _route(self, method: str, path: str, headers: httpx.Headers, body: Any) -> httpx.Response:
        parts = path.strip("/").split("/")
        if path == "/v1/events/batch":
            return self._batch(body)
        if parts[:2] == ["v1", "sessions"] and len(parts) >= 4:
            sid = parts[2]
            if sid not in self.sessions:
                return error(404, "not_found")
            if parts[3] == "state":
                state, version = self.state.get(sid, ({}, 0))
                if method == "PATCH":
                    if "if-match" in headers and int(headers["if-match"]) != version:
                        return error(412, "precondition_failed")
                    state = {**state, **{k: v for k, v in body.items() if v is not None}}
                    state = {k: v for k, v in state.items() if body.get(k, 0) is not None}
                    version += 1
                    self.state[sid] = (state, version)
                return envelope({"state": state, "version": version})
            if parts[3] == "goals":
                if method == "POST":
                    goal = {
                        "id": f"g{len(self.goals) + 1}",
                        "session_id": sid,
                        "status": "open",
                        **body,
                    }
                    self.goals[goal["id"]] = goal
                    return envelope(goal, 201)
                goal = self.goals[parts[4]]
                goal.update(body)
                return envelope(goal)
        if path == "/v1/memories":
            memory = {"id": f"m{len(self.memories) + 1}", **body}
            self.memories[memory["id"]] = memory
            return envelope(memory, 201)
        if path == "/v1/memories/batch":
            out = []
            for item in body["items"]:
                memory = {"id": f"m{len(self.memories) + 1}", **item}
                self.memories[memory["id"]] = memory
                out.append(memory)
            return envelope({"items": out}, 201)
        if path == "/v1/memories/search":
            results = [
                {"memory": m, "score": 1.0, "scores": {"bm25": 1.0}}
                for m in self.memories.values()
                if m["namespace"] == body["namespace"]
                and body["query"].lower() in m["text"].lower()
            ]
            return envelope({"results": results[: body.get("limit", 10)]})
        if parts[:2] == ["v1", "memories"] and method == "DELETE":
            if self.memories.pop(parts[2], None) is None:
                return error(404, "not_found")
            return envelope({"id": parts[2], "deleted": True})
        return error(404, "not_found", f"no route {method} {path}")

    def _batch(self, body: dict[str, Any]) -> httpx.Response:
        kinds = {e["kind"] for e in body.get("events", [])}
        if self.reject_kind in kinds:
            return error(self.reject_status, "invalid_input", "bad kind")
        if self.crash_kind in kinds:
            return error(500, "internal", "boom")
        known = set(self.sessions)
        for spec in body.get("sessions", []):
            parent = spec.get("parent_id")
            if spec["id"] not in known and parent is not None and parent not in known:
                return error(404, "not_found", f"no session {parent}")
            known.add(spec["id"])
        created = []
        for spec in body.get("sessions", []):
            if spec["id"] not in self.sessions:
                self.sessions[spec["id"]] = spec
                self.events.setdefault(spec["id"], [])
                created.append(spec["id"])
        seqs, duplicates = [], 0
        for event in body.get("events", []):
            key = f"{event['session_id']}/{event['idempotency_key']}"
            if key in self.keys:
                seqs.append(self.keys[key])
                duplicates += 1
                continue
            stored = self.events.setdefault(event["session_id"], [])
            stored.append({**event, "seq": len(stored) + 1})
            self.keys[key] = len(stored)
            seqs.append(len(stored))
        for end in body.get("ends", []):
            self.ended.setdefault(end["session_id"], end["status"])
        return envelope({"seqs": seqs, "duplicates": duplicates, "created_sessions": created})
