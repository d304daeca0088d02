from __future__ import annotations

from pathlib import Path

import pytest

from tether_client import Config, ConfigError, default_spool_dir


def test_defaults_without_environment() -> None:
    cfg = Config.resolve(env={"HOME": "/home/a"})
    assert cfg.url == "http://127.0.0.1:7117"
    assert cfg.api_key is None
    assert cfg.session_id is None
    assert cfg.spool_dir == Path("/home/a/.cache/tether/spool")
    assert cfg.flush_interval == 0.2
    assert cfg.batch_size == 100
    assert cfg.poison_after == 3
    assert "Authorization" not in cfg.headers()


def test_environment_is_read() -> None:
    env = {
        "TETHER_URL": "https://tether.example:8443/",
        "TETHER_API_KEY": "tk_secret",
        "TETHER_SESSION_ID": "s-1",
        "TETHER_SPOOL_DIR": "/tmp/spool-x",
        "TETHER_SPOOL_MAX_BYTES": "1024",
    }
    cfg = Config.resolve(env=env)
    assert cfg.url == "https://tether.example:8443"
    assert cfg.headers()["Authorization"] == "Bearer tk_secret"
    assert cfg.session_id == "s-1"
    assert cfg.spool_dir == Path("/tmp/spool-x")
    assert cfg.spool_max_bytes == 1024


def test_arguments_win_over_environment() -> None:
    env = {"TETHER_URL": "http://a:1", "TETHER_API_KEY": "tk_env", "TETHER_SESSION_ID": "env"}
    cfg = Config.resolve(
        url="http://b:2", api_key="tk_arg", session_id="arg", env=env, flush_interval=1.0
    )
    assert (cfg.url, cfg.api_key, cfg.session_id, cfg.flush_interval) == (
        "http://b:2",
        "tk_arg",
        "arg",
        1.0,
    )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"url": "localhost:7117"}, "http:// or https://"),
        ({"spool_max_bytes": 0}, "positive"),
        ({"env": {"TETHER_SPOOL_MAX_BYTES": "lots"}}, "integer"),
        ({"no_such_option": 1}, "unknown option"),
        ({"poison_after": 0}, "poison_after"),
    ],
)
def test_bad_values_raise_config_error(kwargs: dict[str, object], message: str) -> None:
    kwargs.setdefault("env", {})
    with pytest.raises(ConfigError, match=message):
        Config.resolve(**kwargs)  # type: ignore[arg-type]


def test_api_key_hidden_from_repr() -> None:
    cfg = Config.resolve(api_key="tk_topsecret", env={})
    assert "tk_topsecret" not in repr(cfg)


def test_spool_path_depends_on_url_and_key_not_revealing_it() -> None:
    a = Config.resolve(api_key="tk_a", env={"HOME": "/h"})
    b = Config.resolve(api_key="tk_b", env={"HOME": "/h"})
    c = Config.resolve(url="http://other:1", api_key="tk_a", env={"HOME": "/h"})
    assert len({a.spool_path, b.spool_path, c.spool_path}) == 3
    assert a.spool_path == Config.resolve(api_key="tk_a", env={"HOME": "/h"}).spool_path
    assert "tk_a" not in str(a.spool_path)


@pytest.mark.parametrize(
    ("platform", "env", "expected"),
    [
        ("linux", {"HOME": "/h"}, "/h/.cache/tether/spool"),
        ("linux", {"HOME": "/h", "XDG_CACHE_HOME": "/x"}, "/x/tether/spool"),
        ("darwin", {"HOME": "/Users/a"}, "/Users/a/Library/Caches/tether/spool"),
        ("win32", {"HOME": "/h", "LOCALAPPDATA": "/C/L"}, "/C/L/tether/spool"),
    ],
)
def test_default_spool_dir(platform: str, env: dict[str, str], expected: str) -> None:
    assert default_spool_dir(env, platform) == Path(expected)
