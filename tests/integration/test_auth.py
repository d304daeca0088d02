"""Keys across replicas, rate limits, hosts and origins, the bind rule, the audit log.

Real ``tether serve`` processes (and one plain ``uvicorn``), real PostgreSQL and Redis,
the real SDK. The per-route isolation and scope matrix is in ``test_isolation.py``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from tether.testing import TetherServer, free_port
from tether_client import Client

AUTH = {"TETHER_REQUIRE_AUTH": "true"}


def _bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


@pytest.fixture
def replicas(replica_factory: Callable[..., list[TetherServer]]) -> list[TetherServer]:
    """Two replicas on one PostgreSQL database and one Redis, auth required, reads
    limited to 5 requests/s with a 2 s burst (10 tokens) per key."""
    env = {**AUTH, "TETHER_RATE_LIMIT_READ": "5", "TETHER_RATE_LIMIT_BURST_S": "2"}
    return replica_factory(2, env)


@pytest.mark.postgres
@pytest.mark.redis
def test_a_revoked_or_expired_key_is_refused_within_a_second_on_every_replica(
    replicas: list[TetherServer],
) -> None:
    admin, _ = replicas[0].create_key("acme", "admin")
    with httpx.Client(base_url=replicas[0].url, headers=_bearer(admin), timeout=30) as one:
        made = one.post("/v1/admin/keys", json={"scope": "write", "name": "soon revoked"})
        assert made.status_code == 201, made.text
        revoked, revoked_id = made.json()["data"]["secret"], made.json()["data"]["key"]["id"]
        expires_at = datetime.now(UTC) + timedelta(seconds=2)
        made = one.post(
            "/v1/admin/keys", json={"scope": "read", "expires_at": expires_at.isoformat()}
        )
        assert made.status_code == 201, made.text
        expiring = made.json()["data"]["secret"]
    # Both keys work on both replicas (and each replica now holds them in its cache).
    for srv in replicas:
        for secret in (revoked, expiring):
            assert httpx.get(f"{srv.url}/v1/sessions", headers=_bearer(secret)).status_code == 200
    r = httpx.delete(f"{replicas[1].url}/v1/admin/keys/{revoked_id}", headers=_bearer(admin))
    assert r.status_code == 200, r.text
    time.sleep(1.0)
    for srv in replicas:
        r = httpx.get(f"{srv.url}/v1/sessions", headers=_bearer(revoked))
        assert r.status_code == 401, (srv.url, r.text)
    time.sleep(max(0.0, (expires_at - datetime.now(UTC)).total_seconds()) + 1.0)
    for srv in replicas:
        r = httpx.get(f"{srv.url}/v1/sessions", headers=_bearer(expiring))
        assert r.status_code == 401, (srv.url, r.text)
    # The revocation is in the audit log, with who did it.
    audit = httpx.get(f"{replicas[0].url}/v1/admin/audit", headers=_bearer(admin)).json()["data"]
    entries = [(e["action"], e["target"]) for e in audit["items"]]
    assert ("key.revoked", revoked_id) in entries


@pytest.mark.postgres
@pytest.mark.redis
def test_two_replicas_on_redis_share_one_rate_limit(replicas: list[TetherServer]) -> None:
    """30 reads alternating between the replicas as fast as they answer: with one shared
    bucket (10 tokens, 5/s) at most 10 plus what refilled meanwhile get through; two
    separate buckets would let at least 20 through."""
    reader, _ = replicas[0].create_key("acme", "read")
    clients = [httpx.Client(base_url=s.url, headers=_bearer(reader), timeout=30) for s in replicas]
    try:
        for c in clients:  # authenticate once on each (not counted: the first fills caches)
            c.get("/healthz")
        started = time.monotonic()
        answers = [clients[n % 2].get("/v1/sessions") for n in range(30)]
        elapsed = time.monotonic() - started
    finally:
        for c in clients:
            c.close()
    passed = sum(r.status_code == 200 for r in answers)
    limited = [r for r in answers if r.status_code == 429]
    assert passed + len(limited) == 30
    assert passed <= 10 + 5 * elapsed + 1, (passed, elapsed)
    assert {r.request.url.port for r in limited} == {s.port for s in replicas}
    for r in limited:
        assert int(r.headers["retry-after"]) >= 1
        assert r.json()["error"]["code"] == "rate_limited"


class _CountingTransport(httpx.HTTPTransport):
    """The real transport, counting the statuses it hands back."""

    def __init__(self) -> None:
        super().__init__()
        self.statuses: list[int] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = super().handle_request(request)
        self.statuses.append(response.status_code)
        return response


def test_the_sdk_waits_out_429s_and_delivers_every_event(
    server_factory: Callable[..., TetherServer], fresh_store: str, tmp_path: Path
) -> None:
    env = {**AUTH, "TETHER_RATE_LIMIT_WRITE": "5", "TETHER_RATE_LIMIT_BURST_S": "0.4"}
    srv = server_factory(fresh_store, env=env)
    secret, _ = srv.create_key("acme", "write")
    transport = _CountingTransport()
    with Client(
        srv.url,
        api_key=secret,
        spool_dir=tmp_path / "spool",
        transport=transport,
        batch_size=4,
        max_batch_events=4,
        flush_interval=0.02,
        close_timeout=60,
    ) as client:
        with client.session("rl-1", agent="burst") as session:
            for n in range(48):
                session.log_action(f"step {n}")
        assert client.flush(60)
    assert 429 in transport.statuses, transport.statuses  # the limit was actually hit
    with httpx.Client(base_url=srv.url, headers=_bearer(secret)) as http:
        admin, _ = srv.create_key("acme", "admin")
        events = http.get(
            "/v1/sessions/rl-1/events", params={"limit": 1000}, headers=_bearer(admin)
        ).json()["data"]["items"]
    steps = [e["name"] for e in events if e["kind"] == "action"]
    assert steps == [f"step {n}" for n in range(48)]


def _session_count(srv: TetherServer, headers: dict[str, str]) -> int:
    data = httpx.get(f"{srv.url}/v1/stats", headers=headers).json()["data"]
    return int(data["sessions"]["total"])


def test_foreign_hosts_cross_origin_writes_and_form_bodies_change_nothing(
    server_factory: Callable[..., TetherServer], fresh_store: str
) -> None:
    """In local mode, the case a DNS-rebinding page or a cross-site form would exploit."""
    srv = server_factory(fresh_store)
    url = f"{srv.url}/v1/sessions"
    before = _session_count(srv, {})
    for host in ("evil.example", "evil.example:7117", "127.0.0.1.evil.example"):
        r = httpx.post(url, json={"id": "rebound"}, headers={"Host": host})
        assert r.status_code == 421, r.text
        assert r.json()["error"]["code"] == "misdirected_request"
        assert httpx.get(url, headers={"Host": host}).status_code == 421
    origin = {"Origin": "https://evil.example"}
    assert httpx.post(url, json={"id": "xsite"}, headers=origin).status_code == 403
    assert httpx.delete(f"{url}/any", headers=origin).status_code == 403
    form = httpx.post(url, data={"id": "form"})  # what an HTML form sends
    assert form.status_code == 415
    plain = httpx.post(url, content=b'{"id": "plain"}', headers={"Content-Type": "text/plain"})
    assert plain.status_code == 415
    # CORS is off: a preflight gets no Access-Control-Allow-Origin.
    pre = httpx.options(url, headers={**origin, "Access-Control-Request-Method": "POST"})
    assert "access-control-allow-origin" not in pre.headers
    assert _session_count(srv, {}) == before
    # The loopback names, with and without a port, are served.
    for host in ("localhost", f"127.0.0.1:{srv.port}", f"localhost:{srv.port}"):
        assert httpx.get(url, headers={"Host": host}).status_code == 200


def test_an_allowed_cors_origin_may_call_the_api(
    server_factory: Callable[..., TetherServer], fresh_store: str
) -> None:
    ok = "https://console.example"
    srv = server_factory(fresh_store, env={"TETHER_CORS_ORIGINS": ok})
    url = f"{srv.url}/v1/sessions"
    pre = httpx.options(
        url,
        headers={
            "Origin": ok,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization,content-type",
        },
    )
    assert pre.headers["access-control-allow-origin"] == ok
    r = httpx.post(url, json={"id": "from-console"}, headers={"Origin": ok})
    assert r.status_code == 201
    assert r.headers["access-control-allow-origin"] == ok
    assert (
        httpx.post(url, json={"id": "x"}, headers={"Origin": "https://other.example"}).status_code
        == 403
    )


def test_any_way_of_serving_refuses_an_open_non_loopback_bind(tmp_path: Path) -> None:
    """The rule is in the app's startup: plain uvicorn on the app factory applies it too,
    and a key (or TETHER_REQUIRE_AUTH) lifts it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TETHER_")}
    env |= {"TETHER_HOME": str(tmp_path), "TETHER_HOST": "0.0.0.0"}
    cmd = [
        *(sys.executable, "-m", "uvicorn", "tether.server.app:create_app", "--factory"),
        *("--host", "127.0.0.1", "--port", str(free_port())),
    ]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode != 0
    assert "TETHER_REQUIRE_AUTH=true" in done.stderr
    assert "tether keys create" in done.stderr
    # With auth required the same start succeeds (stopped as soon as it answers).
    port = free_port()
    cmd[-1] = str(port)
    proc = subprocess.Popen(
        cmd, env=env | AUTH, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 60
        status = None
        while time.monotonic() < deadline and proc.poll() is None and status is None:
            try:
                status = httpx.get(f"http://127.0.0.1:{port}/v1/sessions").status_code
            except httpx.TransportError:
                time.sleep(0.1)
        assert status == 401  # up, and asking for a key
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_the_audit_log_records_keys_purges_exports_and_failed_auth(
    server_factory: Callable[..., TetherServer], fresh_store: str
) -> None:
    srv = server_factory(fresh_store, env=AUTH)
    admin, admin_key = srv.create_key("acme", "admin", name="ops")
    with httpx.Client(base_url=srv.url, headers=_bearer(admin), timeout=30) as http:
        made = http.post("/v1/memories", json={"namespace": "n", "text": "to be purged"})
        mid = made.json()["data"]["memory"]["id"]
        assert http.delete(f"/v1/memories/{mid}", params={"purge": "true"}).status_code == 200
        assert http.get("/v1/memories/export").status_code == 200
        assert http.post("/v1/admin/memory/reindex", json={"all": False}).status_code < 300
        forged = "tk_01JZZZZZZZZZZZZZZZZZZZZZZZ_" + "B" * 43
        for _ in range(6):
            assert httpx.get(f"{srv.url}/v1/stats", headers=_bearer(forged)).status_code == 401
        time.sleep(6)  # failed-auth bursts are written every 5 s
        items = http.get("/v1/admin/audit").json()["data"]["items"]
    actions = {e["action"] for e in items}
    assert {"key.created", "memory.purged", "memory.exported", "memory.reindexed"} <= actions
    purge = next(e for e in items if e["action"] == "memory.purged")
    assert purge["key_id"] == admin_key["id"]
    assert purge["target"] == mid
    assert purge["correlation_id"]
    # Failed authentication with keys that are not ours is the operator's (tenant "*").
    cli = subprocess.run(
        [sys.executable, "-m", "tether", "audit", "--json", "--db", str(srv.db)],
        env=srv.env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert cli.returncode == 0, cli.stderr
    assert '"auth.failed"' in cli.stdout
    assert admin not in cli.stdout  # secrets never reach the log
