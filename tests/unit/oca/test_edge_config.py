"""oca.config's edge sections and load_oca_config: defaults, validation, the documented example."""

from __future__ import annotations

from pathlib import Path

import pytest

from oca.config import ConfigError, Section, default_edge_config, load_oca_config, read_edge_config

REPO = Path(__file__).resolve().parents[3]


def edge(data: dict) -> object:
    return read_edge_config(Section(data, "oca.toml"))


def test_defaults() -> None:
    e = default_edge_config()
    assert e.server.listen == ("0.0.0.0", 8080) and e.server.workers == 0
    assert e.limits.max_ranges == 16 and e.limits.header_timeout == 10.0
    assert e.tokens.mode == "open" and e.miss.action == "404" and e.cors.allowed_origins == ()
    assert e.admin.listen == ("127.0.0.1", 9100) and e.log.access_log is None


@pytest.mark.parametrize(("data", "key"), [
    ({"tokens": {"mode": "require"}}, "tokens.keys_file"),
    ({"tokens": {"mode": "sometimes"}}, "tokens.mode"),
    ({"tokens": {"mode": "open"}, "miss": {"action": "redirect"}}, "miss.redirect_base"),
    ({"tokens": {"mode": "open"}, "miss": {"action": "redirect", "redirect_base": "ftp://x"}}, "miss.redirect_base"),
    ({"tokens": {"mode": "open"}, "cors": {"allowed_origins": ["player.example"]}}, "cors.allowed_origins[0]"),
    ({"tokens": {"mode": "open"}, "limits": {"max_ranges": 0}}, "limits.max_ranges"),
    ({"tokens": {"mode": "open"}, "limits": {"header_timeout": "0s"}}, "limits.header_timeout"),
    ({"tokens": {"mode": "open"}, "limits": {"max_header_bytes": 10}}, "limits.max_header_bytes"),
    ({"tokens": {"mode": "open"}, "server": {"listen": "nowhere"}}, "server.listen"),
    ({"tokens": {"mode": "open"}, "server": {"lisen": "0.0.0.0:1"}}, "server.lisen"),
    ({"tokens": {"mode": "open"}, "log": {"level": "LOUD"}}, "log.level"),
])
def test_errors_name_the_key(data: dict, key: str) -> None:
    with pytest.raises(ConfigError) as e:
        edge(data)
    assert e.value.key == key and e.value.file == "oca.toml"


def test_redirect_base_trailing_slash_dropped() -> None:
    e = edge({"tokens": {"mode": "open"}, "miss": {"action": "redirect", "redirect_base": "http://x:8080/"}})
    assert e.miss.redirect_base == "http://x:8080"


def test_documented_example_validates(tmp_path: Path) -> None:
    text = (REPO / "docs/examples/oca.toml").read_text()
    for d in ("ssd0", "hdd0"):
        (tmp_path / d).mkdir()
    (tmp_path / "keys.toml").write_text('[[keys]]\nid = "k"\nsecret = "' + "s" * 40 + '"\n')
    text = (text.replace("/srv/oca", str(tmp_path)).replace("/etc/oca/keys.toml", str(tmp_path / "keys.toml"))
            .replace("/var/lib/oca", str(tmp_path)).replace("/var/log/oca", str(tmp_path)))
    (tmp_path / "oca.toml").write_text(text)
    config = load_oca_config(tmp_path / "oca.toml")
    assert config.edge.tokens.mode == "require" and len(config.store.disks) == 2
    assert config.edge.cors.allowed_origins == ("https://player.example.com",)


def test_unknown_top_level_section_rejected(tmp_path: Path) -> None:
    (tmp_path / "ssd").mkdir()
    (tmp_path / "oca.toml").write_text(f"""
[store]
index_path = "{tmp_path}/index"
default_tier = "ssd"
[[store.tiers.ssd.disks]]
path = "{tmp_path}/ssd"
capacity = "1GiB"
[tokens]
mode = "open"
[sever]
listen = "0.0.0.0:1"
""")
    with pytest.raises(ConfigError) as e:
        load_oca_config(tmp_path / "oca.toml")
    assert e.value.key == "sever"
