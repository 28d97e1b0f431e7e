"""Location resolvers: the ``SESSIONKIT_LOCATION_RESOLVER`` hook and GeoIP2.

The GeoIP2 tests read real MaxMind DB files, written into ``tmp_path`` by
``mmdb-writer`` and opened by Django's ``GeoIP2`` and MaxMind's reader.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

import pytest
from django.contrib.gis.geoip2 import GeoIP2Exception
from django.test import override_settings
from mmdb_writer import MMDBWriter
from netaddr import IPSet

from django_sessionkit import location
from django_sessionkit.location import MAX_LENGTH, geoip2, resolve

LOGGER = "django_sessionkit.location"
THIS = "tests.test_location"
GEOIP2 = "django_sessionkit.location.geoip2"

# What the resolvers below were called with, newest last.
calls: list[Any] = []


@pytest.fixture(autouse=True)
def _forget_calls() -> None:
    calls.clear()


def echo(ip: str) -> str:
    calls.append(ip)
    return f"near {ip}"


def other(ip: str) -> str:
    return "somewhere else"


def broken(ip: str) -> str:
    raise RuntimeError("the location service is down")


def returns(value: Any) -> Any:
    def resolver(ip: str) -> Any:
        return value

    return resolver


returns_int = returns(42)
returns_bytes = returns(b"London")
returns_list = returns(["London"])
returns_none = returns(None)
returns_blank = returns("   \n")
returns_padded = returns("  Paris, France \n")
returns_long = returns("x" * 250)
returns_long_with_space = returns("y" * (MAX_LENGTH - 1) + "  tail")

NOT_CALLABLE = "a string, not a function"


# -- resolve() ---------------------------------------------------------------


def test_resolve_without_resolver_returns_none() -> None:
    assert resolve("81.2.69.160") is None


@pytest.mark.parametrize("ip", [None, ""])
def test_resolve_without_ip_returns_none_and_calls_nothing(ip: str | None) -> None:
    with override_settings(SESSIONKIT_LOCATION_RESOLVER=f"{THIS}.echo"):
        assert resolve(ip) is None
    assert calls == []


@pytest.mark.parametrize(
    "ip",
    [
        "81.2.69.160",
        # As SESSIONKIT_STORE_IP = "truncated" stores them: /24 and /48.
        "81.2.69.0",
        "2a02:db8:1::",
    ],
)
def test_resolve_passes_ip_as_stored(ip: str) -> None:
    with override_settings(SESSIONKIT_LOCATION_RESOLVER=f"{THIS}.echo"):
        assert resolve(ip) == f"near {ip}"
    assert calls == [ip]


def test_resolve_resolver_raising_returns_none_and_warns(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with (
        override_settings(SESSIONKIT_LOCATION_RESOLVER=f"{THIS}.broken"),
        caplog.at_level(logging.WARNING, logger=LOGGER),
    ):
        assert resolve("81.2.69.160") is None
    [record] = caplog.records
    assert record.name == LOGGER
    assert record.levelno == logging.WARNING
    assert f"{THIS}.broken" in record.getMessage()
    assert record.exc_info is not None
    assert str(record.exc_info[1]) == "the location service is down"


@pytest.mark.parametrize(
    "name", ["returns_int", "returns_bytes", "returns_list", "returns_none"]
)
def test_resolve_non_str_result_returns_none(name: str) -> None:
    with override_settings(SESSIONKIT_LOCATION_RESOLVER=f"{THIS}.{name}"):
        assert resolve("81.2.69.160") is None


def test_resolve_blank_result_returns_none() -> None:
    with override_settings(SESSIONKIT_LOCATION_RESOLVER=f"{THIS}.returns_blank"):
        assert resolve("81.2.69.160") is None


def test_resolve_result_stripped() -> None:
    with override_settings(SESSIONKIT_LOCATION_RESOLVER=f"{THIS}.returns_padded"):
        assert resolve("81.2.69.160") == "Paris, France"


def test_resolve_long_result_capped() -> None:
    assert MAX_LENGTH == 100
    with override_settings(SESSIONKIT_LOCATION_RESOLVER=f"{THIS}.returns_long"):
        assert resolve("81.2.69.160") == "x" * 100


def test_resolve_long_result_capped_without_trailing_space() -> None:
    with override_settings(
        SESSIONKIT_LOCATION_RESOLVER=f"{THIS}.returns_long_with_space"
    ):
        assert resolve("81.2.69.160") == "y" * (MAX_LENGTH - 1)


def test_resolve_imports_resolver_once(monkeypatch: pytest.MonkeyPatch) -> None:
    module = sys.modules[THIS]
    with override_settings(SESSIONKIT_LOCATION_RESOLVER=f"{THIS}.echo"):
        assert resolve("81.2.69.160") == "near 81.2.69.160"
        # A fresh import would now find the other function.
        monkeypatch.setattr(module, "echo", other)
        assert resolve("81.2.69.161") == "near 81.2.69.161"
    with override_settings(SESSIONKIT_LOCATION_RESOLVER=f"{THIS}.echo"):
        assert resolve("81.2.69.161") == "somewhere else"


def test_resolve_setting_change_resets_resolver() -> None:
    with override_settings(SESSIONKIT_LOCATION_RESOLVER=f"{THIS}.echo"):
        assert resolve("81.2.69.160") == "near 81.2.69.160"
        with override_settings(SESSIONKIT_LOCATION_RESOLVER=f"{THIS}.other"):
            assert resolve("81.2.69.160") == "somewhere else"
        assert resolve("81.2.69.160") == "near 81.2.69.160"
    assert resolve("81.2.69.160") is None


@pytest.mark.parametrize(
    "path",
    [f"{THIS}.nowhere", "no_such_package.resolve", "nodots", f"{THIS}.NOT_CALLABLE"],
)
def test_resolve_unusable_path_returns_none_and_warns_once(
    path: str, caplog: pytest.LogCaptureFixture
) -> None:
    with (
        override_settings(SESSIONKIT_LOCATION_RESOLVER=path),
        caplog.at_level(logging.WARNING, logger=LOGGER),
    ):
        assert resolve("81.2.69.160") is None
        assert resolve("81.2.69.161") is None
    [record] = caplog.records
    assert record.name == LOGGER
    assert "SESSIONKIT_LOCATION_RESOLVER" in record.getMessage()
    assert repr(path) in record.getMessage()


# -- The GeoIP2 resolver -----------------------------------------------------

LONDON = {
    "city": {"names": {"en": "London"}},
    "country": {"iso_code": "GB", "names": {"en": "United Kingdom"}},
}
GERMANY = {"country": {"iso_code": "DE", "names": {"en": "Germany"}}}
# Present in the test databases so that only the address check keeps them out.
PRIVATE = {
    "city": {"names": {"en": "Intranet"}},
    "country": {"iso_code": "ZZ", "names": {"en": "Private"}},
}


def write_database(directory: Path, filename: str, database_type: str) -> Path:
    """Write a MaxMind DB as MaxMind lays theirs out: IPv6 with IPv4 inside."""
    writer = MMDBWriter(
        ip_version=6,
        ipv4_compatible=True,
        database_type=database_type,
        languages=["en"],
        description="django-sessionkit test database",
    )
    writer.insert_network(IPSet(["81.2.69.0/24"]), LONDON)
    writer.insert_network(IPSet(["89.160.20.0/24", "2a02:db8::/32"]), GERMANY)
    writer.insert_network(
        IPSet(["10.0.0.0/8", "127.0.0.0/8", "192.168.0.0/16", "fd00::/8"]), PRIVATE
    )
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / filename
    writer.to_db_file(str(path))
    return path


@pytest.fixture
def city_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "city"
    write_database(directory, "GeoLite2-City.mmdb", "GeoLite2-City")
    return directory


@pytest.fixture
def country_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "country"
    write_database(directory, "GeoLite2-Country.mmdb", "GeoLite2-Country")
    return directory


@pytest.mark.parametrize(
    ("ip", "expected"),
    [
        ("81.2.69.160", "London, United Kingdom"),
        ("81.2.69.0", "London, United Kingdom"),  # truncated to its /24
        ("  81.2.69.160 ", "London, United Kingdom"),
        ("::ffff:81.2.69.160", "London, United Kingdom"),
        ("89.160.20.112", "Germany"),  # no city in the record
        ("2a02:db8:1::", "Germany"),  # truncated to its /48
    ],
)
def test_geoip2_city_database(city_dir: Path, ip: str, expected: str) -> None:
    with override_settings(GEOIP_PATH=str(city_dir)):
        assert geoip2(ip) == expected


@pytest.mark.parametrize(
    ("ip", "expected"),
    [("81.2.69.160", "United Kingdom"), ("2a02:db8:1::1", "Germany")],
)
def test_geoip2_country_database(country_dir: Path, ip: str, expected: str) -> None:
    with override_settings(GEOIP_PATH=str(country_dir)):
        assert geoip2(ip) == expected


def test_geoip2_database_file_as_path(city_dir: Path) -> None:
    with override_settings(GEOIP_PATH=str(city_dir / "GeoLite2-City.mmdb")):
        assert geoip2("81.2.69.160") == "London, United Kingdom"


@pytest.mark.parametrize(
    "ip", ["10.1.2.3", "127.0.0.1", "192.168.1.0", "fd00::1", "::1", "100.64.0.1"]
)
def test_geoip2_private_address_returns_none(city_dir: Path, ip: str) -> None:
    with override_settings(GEOIP_PATH=str(city_dir)):
        assert geoip2(ip) is None


@pytest.mark.parametrize("ip", ["8.8.8.8", "2001:4860::8888"])
def test_geoip2_address_not_found_returns_none(city_dir: Path, ip: str) -> None:
    with override_settings(GEOIP_PATH=str(city_dir)):
        assert geoip2(ip) is None


@pytest.mark.parametrize(
    "ip",
    # "localhost" would be 127.0.0.1, which the database knows: a host name
    # must not be looked up.
    ["", "localhost", "not an address", "81.2.69", "81.2.69.0/24", "999.1.1.1"],
)
def test_geoip2_invalid_input_returns_none(city_dir: Path, ip: str) -> None:
    with override_settings(GEOIP_PATH=str(city_dir)):
        assert geoip2(ip) is None


def test_geoip2_ipv6_in_ipv4_only_database_returns_none(tmp_path: Path) -> None:
    writer = MMDBWriter(ip_version=4, database_type="GeoLite2-City")
    writer.insert_network(IPSet(["81.2.69.0/24"]), LONDON)
    writer.to_db_file(str(tmp_path / "GeoLite2-City.mmdb"))
    with override_settings(GEOIP_PATH=str(tmp_path)):
        assert geoip2("81.2.69.160") == "London, United Kingdom"
        assert geoip2("2a02:db8:1::1") is None


def test_geoip2_opens_database_once(city_dir: Path) -> None:
    database = city_dir / "GeoLite2-City.mmdb"
    with override_settings(GEOIP_PATH=str(city_dir)):
        assert geoip2("81.2.69.160") == "London, United Kingdom"
        opened = location._geoip2_database()
        database.unlink()
        # The open database still answers; opening it again would fail.
        assert geoip2("81.2.69.160") == "London, United Kingdom"
        assert location._geoip2_database() is opened


def test_geoip2_setting_change_opens_other_database(
    city_dir: Path, country_dir: Path
) -> None:
    with override_settings(GEOIP_PATH=str(city_dir)):
        assert geoip2("81.2.69.160") == "London, United Kingdom"
    with override_settings(GEOIP_PATH=str(country_dir)):
        assert geoip2("81.2.69.160") == "United Kingdom"


def test_geoip2_without_geoip_path_raises() -> None:
    with pytest.raises(GeoIP2Exception, match="GEOIP_PATH"):
        geoip2("81.2.69.160")


def test_geoip2_unsupported_database_raises(tmp_path: Path) -> None:
    write_database(tmp_path, "GeoLite2-City.mmdb", "Example-ISP")
    with (
        override_settings(GEOIP_PATH=str(tmp_path)),
        pytest.raises(GeoIP2Exception, match="Example-ISP"),
    ):
        geoip2("81.2.69.160")


def test_resolve_with_geoip2(city_dir: Path) -> None:
    with override_settings(
        SESSIONKIT_LOCATION_RESOLVER=GEOIP2, GEOIP_PATH=str(city_dir)
    ):
        assert resolve("81.2.69.0") == "London, United Kingdom"
        assert resolve("10.0.0.0") is None


def test_resolve_with_geoip2_without_database_warns(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with (
        override_settings(
            SESSIONKIT_LOCATION_RESOLVER=GEOIP2, GEOIP_PATH=str(tmp_path)
        ),
        caplog.at_level(logging.WARNING, logger=LOGGER),
    ):
        assert resolve("81.2.69.160") is None
    [record] = caplog.records
    assert record.exc_info is not None
    assert isinstance(record.exc_info[1], GeoIP2Exception)
