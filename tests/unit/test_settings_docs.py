"""Every setting has a help text and is documented in docs/configuration.md (CONVENTIONS §2)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tether.config import Settings

DOC = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"


@pytest.mark.parametrize("name", sorted(Settings.model_fields))
def test_setting_has_help_and_is_documented(name: str) -> None:
    field = Settings.model_fields[name]
    assert field.description, f"{name} has no description"
    assert f"TETHER_{name.upper()}" in DOC.read_text(), f"TETHER_{name.upper()} missing from {DOC}"


def test_env_vars_are_read(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("TETHER_HOME", str(tmp_path))
    monkeypatch.setenv("TETHER_PORT", "8123")
    s = Settings()
    assert s.port == 8123
    assert s.db_path == tmp_path / "tether.db"
