"""deploy/: the compose file, image and proxy config agree with each other and with the
settings (no container runtime here, so this is what can be checked without one)."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from tether.config import Settings

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


def _known(name: str) -> bool:
    return name.startswith("TETHER_") and name.removeprefix("TETHER_").lower() in (
        Settings.model_fields
    )


def test_compose_runs_two_replicas_on_postgres_and_redis_behind_the_proxy() -> None:
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    services = compose["services"]
    replicas = sorted(name for name in services if name.startswith("tether-"))
    assert len(replicas) >= 2
    for name in replicas:
        env = services[name]["environment"]
        assert all(_known(key) for key in env), sorted(k for k in env if not _known(k))
        assert env["TETHER_DB"].startswith("postgresql://")
        assert env["TETHER_REDIS_URL"].startswith("redis://redis:")
        assert set(services[name]["depends_on"]) == {"postgres", "redis"}
    assert services["proxy"]["ports"] == ["127.0.0.1:7117:7117"]  # loopback only
    assert not any("ports" in services[name] for name in replicas)
    upstream = re.findall(r"server (tether-\d+):7117", (DEPLOY / "nginx.conf").read_text())
    assert sorted(upstream) == replicas


def test_the_image_sets_only_real_settings_and_checks_readiness() -> None:
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    names = re.findall(r"\b(TETHER_[A-Z_]+)=", dockerfile)
    assert names
    assert all(_known(name) for name in names), names
    assert "/readyz" in dockerfile
    assert "'.[postgres]'" in dockerfile
