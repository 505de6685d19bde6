import pytest

from oca.config import ConfigError, Section, load_toml, parse_address, parse_duration, parse_size, read_store_config
from tests.storekit import write_store_config


@pytest.mark.parametrize(("text", "expected"), [
    (0, 0), (1234, 1234), ("500GB", 500 * 10**9), ("2TiB", 2 * 2**40), ("64KiB", 65536),
    ("1.5 MB", 1_500_000), ("10b", 10), ("7", 7),
])
def test_sizes(text, expected):
    assert parse_size(text) == expected


@pytest.mark.parametrize("bad", ["", "GB", "5XB", -1, True, "1e3", None, [1]])
def test_bad_sizes(bad):
    with pytest.raises(ValueError):
        parse_size(bad)


@pytest.mark.parametrize(("text", "expected"), [
    (3, 3.0), (0.5, 0.5), ("250ms", 0.25), ("30s", 30.0), ("5m", 300.0), ("2h", 7200.0), ("7d", 604800.0),
])
def test_durations(text, expected):
    assert parse_duration(text) == expected


@pytest.mark.parametrize(("text", "expected"), [
    ("127.0.0.1:8080", ("127.0.0.1", 8080)), (":80", ("0.0.0.0", 80)), ("[::1]:9000", ("::1", 9000)),
])
def test_addresses(text, expected):
    assert parse_address(text) == expected


@pytest.mark.parametrize("bad", ["localhost", "a:b", "1.2.3.4:70000"])
def test_bad_addresses(bad):
    with pytest.raises(ValueError):
        parse_address(bad)


def test_errors_name_file_key_and_expectation():
    s = Section({"store": {"tiers": {"ssd": {"disks": [{"path": "/x", "capacity": "1GB"},
                                                        {"path": 3, "capacity": "1GB"}]}}}}, "oca.toml")
    with pytest.raises(ConfigError) as e:
        s.section("store").section("tiers").section("ssd").sections("disks")[1].path("path")
    assert str(e.value) == "oca.toml: store.tiers.ssd.disks[1].path: expected a string, got an integer"


def test_unknown_keys_are_errors():
    s = Section({"listen": "x", "lisen": "y"}, "f.toml", "server")
    s.str("listen")
    with pytest.raises(ConfigError, match=r"f.toml: server.lisen: unknown key"):
        s.done()


def test_missing_disk_directory_is_named(tmp_path):
    path = write_store_config(tmp_path, ssd=("1GB", "1GB"))
    (tmp_path / "ssd1").rmdir()
    with pytest.raises(ConfigError) as e:
        read_store_config(load_toml(path))
    assert str(e.value).startswith(f"{path}: store.tiers.ssd.disks[1].path: directory does not exist")


@pytest.mark.parametrize(("toml", "message"), [
    ("[store]\nindex_path = 'i'\n", "store.tiers: at least one tier"),
    ("[store]\nindex_path = 'i'\n[store.tiers.nvme]\ndisks = [{path='.', capacity=1}]\n",
     "store.tiers.nvme: unknown tier 'nvme'"),
    ("[store]\nindex_path = 'i'\ndefault_tier = 'ssd'\n[store.tiers.hdd]\ndisks = [{path='.', capacity=1}]\n",
     "store.default_tier: tier 'ssd' has no disks"),
    ("[store]\nindex_path = 'i'\n[store.tiers.hdd]\ndisks = [{path='.', capacity='lots'}]\n",
     "store.tiers.hdd.disks[0].capacity: expected a size"),
    ("[store]\nindex_path = 'i'\n[store.tiers.hdd]\ndisks = [{path='.', capacity=1, speed=2}]\n",
     "store.tiers.hdd.disks[0].speed: unknown key"),
    ("[store]\nindex_path = 'i'\n[store.tiers.hdd]\ndisks = [{path='.', capacity=1}, {path='.', capacity=1}]\n",
     "is already used by disk hdd/0"),
    ("[store\n", "invalid TOML"),
    ("", "store: required key is missing"),
])
def test_store_config_errors(tmp_path, toml, message):
    path = tmp_path / "oca.toml"
    path.write_text(toml)
    with pytest.raises(ConfigError) as e:
        read_store_config(load_toml(path))
    assert message in str(e.value)
    assert str(path) in str(e.value)


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_toml(tmp_path / "nope.toml")


def test_relative_paths_are_taken_from_the_config_file(tmp_path):
    config = read_store_config(load_toml(write_store_config(tmp_path)))
    assert config.index_path == tmp_path / "index"
    assert [d.id for d in config.disks] == ["ssd/0", "hdd/0"]
    assert config.disks[0].path == tmp_path / "ssd0"
    assert config.disks[0].capacity == 10_000_000


@pytest.mark.parametrize(("data", "required", "expected"), [
    ({"token": "inline"}, True, "inline"),
    ({"token_file": "secret"}, True, "from-file"),
    ({}, False, None),
])
def test_secrets_come_inline_or_from_a_file(tmp_path, data, required, expected):
    (tmp_path / "secret").write_text("  from-file\n")
    section = Section(data, str(tmp_path / "x.toml"), "cp")
    assert section.secret("token", required=required) == expected


@pytest.mark.parametrize(("data", "required", "message"), [
    ({"token": "a", "token_file": "secret"}, False, "cp.token_file: give either token or token_file, not both"),
    ({}, True, "cp.token: required: give token or token_file"),
    ({"token_file": "empty"}, True, "cp.token_file: "),
    ({"token_file": "missing"}, False, "cp.token_file: file does not exist"),
])
def test_bad_secrets_name_the_key(tmp_path, data, required, message):
    (tmp_path / "secret").write_text("s")
    (tmp_path / "empty").write_text(" \n")
    with pytest.raises(ConfigError, match="x.toml") as caught:
        Section(data, str(tmp_path / "x.toml"), "cp").secret("token", required=required)
    assert message in str(caught.value)
    if data.get("token_file") == "empty":
        assert "is empty" in str(caught.value)
