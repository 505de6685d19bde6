from pathlib import Path

import pytest

from oca.config import EXIT_CONFIG, ConfigError
from steering.cli import main
from steering.config import RankingConfig, load_steering_config

EXAMPLE = Path(__file__).resolve().parents[3] / "docs/examples/oca-steering.toml"


def test_example_config_is_valid():
    config = load_steering_config(EXAMPLE)
    assert config.listen == ("0.0.0.0", 8100)
    assert config.snapshot.interval == 5.0 and config.snapshot.token == "change-me"
    assert config.ranking.load_limit == 0.8 and config.ranking.country_regions["AT"] == "eu-central"
    assert config.ranking == RankingConfig(country_regions=config.ranking.country_regions)   # the defaults
    assert config.content_steering.ttl == 10


def write(tmp_path, text):
    path = tmp_path / "s.toml"
    path.write_text(text)
    return path


MINIMAL = '[snapshot]\nurl = "http://127.0.0.1:1/api/v1/fleet/snapshot"\n'


@pytest.mark.parametrize("text, key", [
    ("", "snapshot"),
    ('[snapshot]\nurl = "ftp://x"\n', "snapshot.url"),
    (MINIMAL + 'intervall = "5s"\n', "snapshot.intervall"),
    (MINIMAL + 'interval = "0s"\n', "snapshot.interval"),
    (MINIMAL + 'token = "a"\ntoken_file = "t"\n', "snapshot.token_file"),
    (MINIMAL + '[ranking]\nload_limit = -1\n', "ranking.load_limit"),
    (MINIMAL + '[ranking]\nanswer_cache_mib = -1\n', "ranking.answer_cache_mib"),
    (MINIMAL + '[ranking.country_regions]\nGermany = "eu"\n', "ranking.country_regions.Germany"),
    (MINIMAL + '[geoip]\nasn_db = "missing.mmdb"\n', "geoip.asn_db"),
    (MINIMAL + '[server]\nlisten = "nope"\n', "server.listen"),
    (MINIMAL + '[content_steering]\ntrusted_proxies = ["10.0.0.1/8"]\n', "content_steering.trusted_proxies[0]"),
])
def test_config_errors_name_the_key(tmp_path, text, key):
    with pytest.raises(ConfigError) as info:
        load_steering_config(write(tmp_path, text))
    assert info.value.key == key


def test_token_file_is_read(tmp_path):
    (tmp_path / "t").write_text("secret\n")
    config = load_steering_config(write(tmp_path, MINIMAL + 'token_file = "t"\n'))
    assert config.snapshot.token == "secret"


def test_cli_exits_2_on_config_error(tmp_path, capsys):
    assert main(["check-config", "--config", str(tmp_path / "missing.toml")]) == EXIT_CONFIG
    assert "config file not found" in capsys.readouterr().err
    assert main(["check-config", "--config", str(EXAMPLE)]) == 0
