"""oca-fill.toml: the documented example parses; mistakes name the file and the key."""

from pathlib import Path

import pytest

from fill.config import parse_rate_bps, read_fill_config
from oca.config import ConfigError
from tests.storekit import write_store_config

EXAMPLE = Path(__file__).resolve().parents[3] / "docs" / "examples" / "oca-fill.toml"


def example(tmp_path, replace=()):
    store = write_store_config(tmp_path / "appliance")
    (tmp_path / "appliance.token").write_text("tok\n")
    text = EXAMPLE.read_text().replace("/etc/oca/oca.toml", str(store)) \
        .replace("/etc/oca/appliance.token", str(tmp_path / "appliance.token"))
    for old, new in replace:
        assert old in text, old
        text = text.replace(old, new)
    path = tmp_path / "oca-fill.toml"
    path.write_text(text)
    return path


def test_documented_example_parses_with_the_defaults(tmp_path):
    c = read_fill_config(example(tmp_path))
    assert c.control_plane.manifest_url == "http://control.example.net:8000/api/v1/appliances/isp1-a/fill-manifest"
    assert c.control_plane.token == "tok"
    assert c.rate.default_bps == 1_200_000_000 and c.rate.periods == ()
    assert c.window is not None and c.window.end_s == 14 * 3600
    assert c.fetch.concurrency == 4 and c.fetch.drain_timeout == 300
    assert c.metrics_listen == ("127.0.0.1", 9101) and c.metrics_textfile is None
    assert c.store.default_tier == "hdd"


def test_schedule_and_timezone(tmp_path):
    c = read_fill_config(example(tmp_path, [
        ('timezone = ""', 'timezone = "Europe/Berlin"'),
        ('# [[rate.schedule]]\n# start = "02:00"\n# end = "06:00"\n# limit = "2Gbit"',
         '[[rate.schedule]]\nstart = "02:00"\nend = "06:00"\nlimit = "2Gbit"'),
        ('enabled = true', 'enabled = false')]))
    assert c.timezone is not None and str(c.timezone) == "Europe/Berlin"
    assert c.rate.periods[0].rate_bps == 2_000_000_000 and c.window is None


@pytest.mark.parametrize("old,new,message", [
    ('url = "http://control.example.net:8000"', 'url = "control:8000"', "control_plane.url: expected an http(s)"),
    ('# token = "..."', 'token = "x"', "control_plane.token_file: give either token or token_file, not both"),
    ('start = "02:00"', 'start = "2am"', "window.start: expected a time of day"),
    ('jitter = "2h"', 'jitter = "13h"', "window.jitter: a start jitter of up to"),
    ('timezone = ""', 'timezone = "Mars/Olympus"', "window.timezone: unknown time zone"),
    ('limit = "1.2Gbit"', 'limit = "fast"', "rate.limit: expected a rate"),
    ('concurrency = 4', 'concurrency = 0', "fetch.concurrency: must be at least 1"),
    ('read_timeout = "30s"', 'read_timeout = 0', "fetch.read_timeout: must be positive"),
    ('log_interval = "30s"', 'log_interval = "30s"\nspeed = 1', "speed: unknown key"),
    ('listen = "127.0.0.1:9101"', 'listen = "9101"', "metrics.listen: expected HOST:PORT"),
])
def test_errors_name_file_and_key(tmp_path, old, new, message):
    path = example(tmp_path, [(old, new)])
    with pytest.raises(ConfigError) as err:
        read_fill_config(path)
    assert str(err.value).startswith(f"{path}: ") and message in str(err.value)


@pytest.mark.parametrize("text,bps", [("200Mbit", 200_000_000), ("1.2Gbps", 1_200_000_000), (5000, 5000),
                                      ("unlimited", None), (0, None), ("800 kbit", 800_000)])
def test_rates(text, bps):
    assert parse_rate_bps(text) == bps


@pytest.mark.parametrize("bad", [True, -1, "fast", "10MB", "1e9"])
def test_bad_rates(bad):
    with pytest.raises(ValueError):
        parse_rate_bps(bad)
