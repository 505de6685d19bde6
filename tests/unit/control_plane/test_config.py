"""oca-control.toml validation: every error names the file and key; the example file is valid."""

from __future__ import annotations

from pathlib import Path

import pytest

from control_plane.config import load_config
from oca.config import ConfigError

EXAMPLE = Path(__file__).resolve().parents[3] / "docs" / "examples" / "oca-control.toml"


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "oca-control.toml"
    p.write_text(text)
    return p


def test_empty_file_gives_defaults(tmp_path):
    config = load_config(write(tmp_path, ""))
    assert config.server.listen == ("0.0.0.0", 8000) and config.fleet.stale_after == 90
    assert config.popularity.half_life == 3 * 86400


@pytest.mark.parametrize("text,key", [
    ("[server]\nlisten = 'nope'\n", "server.listen"),
    ("[server]\nlisen = '1.2.3.4:5'\n", "server.lisen"),
    ("[database]\nurl = 'mysql://x'\n", "database.url"),
    ("[fleet]\nstale_after = 'soon'\n", "fleet.stale_after"),
    ("[fleet]\nstale_after = 0\n", "fleet.stale_after"),
    ("[geoip]\ntrusted_proxies = ['10.0.0.0/33']\n", "geoip.trusted_proxies[0]"),
    ("[geoip]\ncountry_db = 'missing.mmdb'\n", "geoip.country_db"),
    ("[fill]\nssd_head_fraction = 0.9\ncached_fraction = 0.5\n", "fill.ssd_head_fraction"),
    ("[popularity]\nhalf_life = '1s'\n", "popularity.half_life"),
    ("[telemetry]\nmax_pending = 0\n", "telemetry.max_pending"),
    ("[log]\nlevel = 'loud'\n", "log.level"),
    ("surprise = 1\n", "surprise"),
])
def test_errors_name_the_key(tmp_path, text, key):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as e:
        load_config(path)
    assert e.value.key == key and e.value.file == str(path)


def test_example_is_valid_and_documents_every_key(tmp_path, monkeypatch):
    text = EXAMPLE.read_text()
    # The example names files that exist on a real host; point them at temporary ones.
    for name in ("operator.token", "GeoLite2-Country.mmdb", "url-keys.toml"):
        (tmp_path / name).write_text("x" if name != "url-keys.toml" else "")
    text = (text.replace("/etc/oca/operator.token", str(tmp_path / "operator.token"))
                .replace("/var/lib/GeoIP/GeoLite2-Country.mmdb", str(tmp_path / "GeoLite2-Country.mmdb"))
                .replace("/etc/oca/url-keys.toml", str(tmp_path / "url-keys.toml")))
    config = load_config(write(tmp_path, text))
    assert config.database.url.startswith("sqlite")
    import dataclasses
    for section in ("server", "database", "auth", "geoip", "fleet", "telemetry", "popularity", "fill", "signing",
                    "log"):
        for field in dataclasses.fields(getattr(config, section)):
            assert f"\n{field.name} =" in text or f"\n# {field.name} =" in text, f"{section}.{field.name}"


def test_route_modules_may_own_config_sections(tmp_path, monkeypatch):
    import types

    from control_plane import api

    def read_demo(section):
        value = section.int("workers", 2, min=1)
        section.done()
        return {"workers": value}
    demo = types.SimpleNamespace(__name__="demo", register=lambda app: None, CONFIG_SECTIONS={"demo": read_demo})
    monkeypatch.setattr(api, "route_modules", lambda: [demo])
    config = load_config(write(tmp_path, "[demo]\nworkers = 4\n"))
    assert config.demo == {"workers": 4} and config.extensions == {"demo": {"workers": 4}}
    with pytest.raises(AttributeError):
        _ = config.nothing
    with pytest.raises(ConfigError) as e:
        load_config(write(tmp_path, "[demo]\nworker = 4\n"))
    assert e.value.key == "demo.worker"
    assert not hasattr(load_config(write(tmp_path, "")), "demo")
