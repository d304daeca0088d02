"""Storage drills against a real server process: disk full, a filesystem that turns
read-only under the server, and a read-only data directory at start.

Each drill mounts a real filesystem (root only; skipped, with the reason, where mounting is
not permitted) and unmounts it at teardown, after stopping the servers on it:

- **Disk full**: the database on a 16 MiB tmpfs, most of it taken by a filler file. Writes
  must answer 503 ``unavailable`` (never 500) once space runs out, every acknowledged event
  must be readable, ``/readyz`` must answer 503 at once, and both must recover when the
  filler is deleted.
- **Read-only**: ``mount -o remount,ro`` refuses (EBUSY) while a process holds files open
  for writing, so it cannot make a running server's filesystem read-only. A filesystem does
  turn read-only under running processes when ext4 hits an error with ``errors=remount-ro``
  (the usual "disk went read-only" on a VM); the drill mounts a small ext4 image that way and
  raises an error through ``/sys/fs/ext4/<dev>/trigger_fs_error``. Writes must answer 503,
  reads 200, ``/readyz`` 503.
- **Read-only data directory**: ``tether serve`` on a read-only mount exits 1 at once with
  one line on stderr naming the path and the fix, no traceback.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tether.testing import TetherServer, free_port, wait_until

pytestmark = pytest.mark.slow


def _sh(*cmd: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, check=False)


class Mounts:
    """Mounts under ``tmp_path``; :meth:`close` unmounts them all (lazily if still busy)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.points: list[Path] = []

    def _mount(self, name: str, *args: str) -> Path:
        point = self.root / name
        point.mkdir()
        r = _sh("mount", *args, str(point))
        if r.returncode != 0:
            pytest.skip(f"mounting is not permitted here: mount {' '.join(args)}: {r.stderr}")
        self.points.append(point)
        return point

    def tmpfs(self, name: str, size: str, *, ro: bool = False) -> Path:
        return self._mount(name, "-t", "tmpfs", "-o", f"size={size}{',ro' if ro else ''}", "tmpfs")

    def ext4_remount_ro_on_error(self, name: str, size_mb: int) -> tuple[Path, Path]:
        """A loop-mounted ext4 image with ``errors=remount-ro``; returns (mount point, the
        sysfs file that raises an ext4 error)."""
        if shutil.which("mkfs.ext4") is None:
            pytest.skip("mkfs.ext4 is not installed")
        image = self.root / f"{name}.img"
        with image.open("wb") as f:
            f.truncate(size_mb * 1024 * 1024)
        r = _sh("mkfs.ext4", "-q", "-F", str(image))
        if r.returncode != 0:
            pytest.skip(f"mkfs.ext4 failed: {r.stderr}")
        point = self._mount(name, "-o", "loop,errors=remount-ro", str(image))
        device = _sh("findmnt", "-n", "-o", "SOURCE", str(point)).stdout.strip()
        trigger = Path("/sys/fs/ext4") / Path(device).name / "trigger_fs_error"
        if not trigger.exists():
            pytest.skip(f"this kernel has no {trigger}")
        return point, trigger

    def remount(self, point: Path, options: str) -> None:
        r = _sh("mount", "-o", f"remount,{options}", str(point))
        assert r.returncode == 0, r.stderr

    def close(self) -> None:
        for point in reversed(self.points):
            if _sh("umount", str(point)).returncode != 0:
                _sh("umount", "-l", str(point))
        self.points.clear()


@pytest.fixture
def mounts(tmp_path: Path) -> Iterator[Mounts]:
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        pytest.skip("mounting a filesystem needs root")
    m = Mounts(tmp_path)
    yield m
    m.close()


@pytest.fixture
def servers(mounts: Mounts, tmp_path: Path) -> Iterator[list[TetherServer]]:
    """Servers to stop before the mounts go (this fixture tears down first)."""
    made: list[TetherServer] = []
    yield made
    for srv in made:
        srv.stop()


def _start(servers: list[TetherServer], db: Path, logs: Path) -> TetherServer:
    srv = TetherServer(db)
    srv.log_path = logs / f"server-{srv.port}.log"  # not on the filesystem under test
    servers.append(srv)
    return srv.start()


def _unavailable(r: httpx.Response) -> None:
    """A storage failure: 503 with the envelope's ``error.code == "unavailable"``."""
    assert r.status_code == 503, (r.status_code, r.text)
    body = r.json()
    assert body["ok"] is False
    assert body["error"]["code"] == "unavailable", body


def _store_check(r: httpx.Response) -> dict[str, Any]:
    body = r.json()
    checks = body["data"]["checks"] if body["ok"] else body["error"]["details"]["checks"]
    store: dict[str, Any] = next(c for c in checks if c["name"] == "store")
    return store


def _events(sid: str, start: int, n: int, pad: int) -> dict[str, Any]:
    return {
        "events": [
            {"kind": "log", "idempotency_key": f"{sid}-{start + i}", "input": "x" * pad}
            for i in range(n)
        ]
    }


def test_disk_full_answers_503_then_recovers_when_space_is_freed(
    mounts: Mounts, servers: list[TetherServer], tmp_path: Path
) -> None:
    disk = mounts.tmpfs("disk", "16m")
    srv = _start(servers, disk / "tether.db", tmp_path)
    with httpx.Client(base_url=srv.url, timeout=10) as http:
        assert http.post("/v1/sessions", json={"id": "full"}).status_code == 201
        assert http.get("/readyz").status_code == 200
        # Leave ~2 MiB for the database to grow into.
        st = os.statvfs(disk)
        filler = disk / "filler"
        filler.write_bytes(b"\0" * (st.f_bavail * st.f_frsize - 2 * 1024 * 1024))

        acked: list[str] = []
        failures = 0
        n = 0
        while failures < 5:
            assert n < 20_000, "the disk never filled up"
            r = http.post("/v1/sessions/full/events", json=_events("full", n, 20, 2000))
            if r.status_code in (200, 201):
                acked.extend(f"full-{n + i}" for i in range(20))
            else:
                _unavailable(r)  # never 500
                failures += 1
            n += 20
        assert acked, "nothing was written before the disk filled"
        message = r.json()["error"]["message"]
        assert message == "store write failed: database or disk is full", message

        ready = http.get("/readyz", timeout=5)  # the check is bounded: answers at once
        _unavailable(ready)
        store = _store_check(ready)
        assert store["status"] == "down"
        assert "full" in store["detail"] or "No space" in store["detail"], store

        filler.unlink()  # space is back: readiness and writes recover by themselves
        wait_until(lambda: http.get("/readyz").status_code == 200)
        r = http.post("/v1/sessions/full/events", json=_events("after", 0, 20, 2000))
        assert r.status_code == 201, r.text
        acked.extend(f"after-{i}" for i in range(20))

    events = srv.events("full")
    stored = [e["idempotency_key"] for e in events]
    assert set(acked) <= set(stored), "an acknowledged event is missing"
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))


def test_a_filesystem_turning_read_only_fails_writes_with_503_and_keeps_reads(
    mounts: Mounts, servers: list[TetherServer], tmp_path: Path
) -> None:
    disk, trigger = mounts.ext4_remount_ro_on_error("ext4", 32)
    srv = _start(servers, disk / "tether.db", tmp_path)
    with httpx.Client(base_url=srv.url, timeout=10) as http:
        assert http.post("/v1/sessions", json={"id": "ro"}).status_code == 201
        r = http.post("/v1/sessions/ro/events", json=_events("ro", 0, 10, 100))
        assert r.status_code == 201, r.text
        assert http.get("/readyz").status_code == 200

        trigger.write_text("tether storage drill")  # ext4 error -> read-only, files open
        mount = next(
            m.split()
            for m in Path("/proc/mounts").read_text().splitlines()
            if m.split()[1] == str(disk)
        )
        flags = mount[3].split(",")  # recent kernels say "emergency_ro" and keep "rw"
        assert "ro" in flags or "emergency_ro" in flags, flags

        for attempt in range(3):
            _unavailable(http.post("/v1/sessions/ro/events", json=_events("ro", 10, 5, 100)))
            _unavailable(http.post("/v1/sessions", json={"id": f"ro-new-{attempt}"}))
            _unavailable(http.post("/v1/memories", json={"namespace": "ro", "text": "a fact"}))

        r = http.get("/v1/sessions/ro/events")
        assert r.status_code == 200, r.text
        assert [e["idempotency_key"] for e in r.json()["data"]["items"]] == [
            f"ro-{i}" for i in range(10)
        ]
        assert http.get("/v1/sessions/ro").status_code == 200

        ready = http.get("/readyz", timeout=5)
        _unavailable(ready)
        assert _store_check(ready)["status"] == "down"


def _serve(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("TETHER_")}
    cmd = [sys.executable, "-m", "tether", "serve", "--port", str(free_port()), *args]
    return subprocess.run(
        cmd, env={**base, **(env or {})}, capture_output=True, text=True, timeout=60
    )


def _one_line(r: subprocess.CompletedProcess[str], expected: str) -> None:
    assert r.returncode == 1, (r.returncode, r.stderr)
    assert "Traceback" not in r.stderr
    assert r.stderr.splitlines() == [expected]


def test_serve_on_a_read_only_data_directory_exits_with_one_line(mounts: Mounts) -> None:
    erofs = "(Read-only file system); set TETHER_HOME or --db to a writable path"
    ro = mounts.tmpfs("ro", "1m", ro=True)
    _one_line(
        _serve("--db", str(ro / "sub" / "tether.db")),
        f"tether: cannot create the database directory {ro / 'sub'} {erofs}",
    )
    _one_line(
        _serve(env={"TETHER_HOME": str(ro)}),
        f"tether: cannot write the database directory {ro} {erofs}",
    )

    # An existing database on a filesystem that is read-only now.
    was_rw = mounts.tmpfs("was-rw", "4m")
    conn = sqlite3.connect(was_rw / "tether.db")
    conn.execute("CREATE TABLE t (x)")
    conn.close()
    mounts.remount(was_rw, "ro")
    _one_line(
        _serve("--db", str(was_rw / "tether.db")),
        f"tether: cannot write the database directory {was_rw} {erofs}",
    )


def test_serve_on_an_unusable_path_exits_with_one_line_without_root(tmp_path: Path) -> None:
    """The same exit where nothing can be mounted: a database under a regular file."""
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    _one_line(
        _serve("--db", str(blocker / "tether.db")),
        f"tether: cannot create the database directory {blocker} (File exists); "
        "set TETHER_HOME or --db to a writable path",
    )
