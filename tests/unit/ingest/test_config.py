"""[ingest] and [playback] sections: defaults, values, errors that name the file and key."""

from pathlib import Path

import pytest

from control_plane.api.playback_manifest import PlaybackSettings, parse_playback_section
from control_plane.ingest_jobs import default_settings, parse_ingest_section
from oca.config import ConfigError, Section


def test_ingest_defaults_and_values(tmp_path):
    db = f"sqlite:///{tmp_path / 'control.db'}"
    s = parse_ingest_section(Section({}, str(tmp_path / "c.toml"), "ingest"), db)
    assert s.output_dir == tmp_path.resolve() / "content" and s.work_dir == tmp_path.resolve() / "ingest-work"
    s = parse_ingest_section(Section({"output_dir": "out", "max_ffmpeg": 4, "segment_s": 4, "preset": "fast",
                                      "progress_interval": "250ms", "run_jobs": False, "poll_interval": "5s"},
                                     str(tmp_path / "c.toml"), "ingest"), db)
    assert s.output_dir == tmp_path / "out" and s.max_ffmpeg == 4 and s.segment_s == 4.0
    assert s.preset == "fast" and s.progress_interval == 0.25 and s.work_dir == tmp_path / "ingest-work"
    assert s.run_jobs is False and s.poll_interval == 5.0


@pytest.mark.parametrize(("data", "key"), [({"max_ffmpeg": 0}, "ingest.max_ffmpeg"), ({"preset": "x"}, "ingest.preset"),
                                           ({"segment_s": 30}, "ingest.segment_s"), ({"typo": 1}, "ingest.typo"),
                                           ({"run_jobs": "no"}, "ingest.run_jobs"),
                                           ({"poll_interval": "0s"}, "ingest.poll_interval")])
def test_ingest_errors_name_the_key(tmp_path, data, key):
    with pytest.raises(ConfigError) as err:
        parse_ingest_section(Section(data, "c.toml", "ingest"), f"sqlite:///{tmp_path / 'control.db'}")
    assert err.value.key == key and err.value.file == "c.toml"


def test_default_settings_next_to_sqlite(tmp_path):
    s = default_settings(f"sqlite:///{tmp_path / 'db' / 'control.db'}")
    assert s.output_dir == (tmp_path / "db" / "content").resolve()
    assert default_settings("postgresql://u@h/db").output_dir == Path.cwd() / "content"


def test_playback_section():
    assert parse_playback_section(Section({}, "c.toml", "playback")) == PlaybackSettings()
    s = parse_playback_section(Section({"url_ttl": "2h", "steering_url": "http://127.0.0.1:8100",
                                        "content_steering_url": "https://steer.example", "bind_client_prefix": True,
                                        "cache_ttl": "500ms", "max_locations": 2}, "c.toml", "playback"))
    assert (s.url_ttl, s.steering_url, s.bind_client_prefix, s.cache_ttl, s.max_locations) == (
        7200.0, "http://127.0.0.1:8100", True, 0.5, 2)


@pytest.mark.parametrize(("data", "key"), [({"steering_url": "steer:8100"}, "playback.steering_url"),
                                           ({"url_ttl": "10s"}, "playback.url_ttl"),
                                           ({"max_locations": 0}, "playback.max_locations"),
                                           ({"steering": "x"}, "playback.steering")])
def test_playback_errors_name_the_key(data, key):
    with pytest.raises(ConfigError) as err:
        parse_playback_section(Section(data, "c.toml", "playback"))
    assert err.value.key == key
