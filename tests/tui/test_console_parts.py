"""The console's pure parts, no server: what operators type, how values are written, what is
read from a build log, ``/metrics`` and the server's error answers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest

from tui import admin, inputs
from tui.client import error_message
from tui.formatting import Formats, duration, size
from tui.screens.configuration import short_source
from tui.screens.option_editor import typed_value
from tui.steps import current_step


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30m", 1800), ("12h", 43200), ("7d", 604800), ("2w", 1209600), ("90", 90)],
)
def test_lifetimes_are_read_with_their_unit(text: str, seconds: int) -> None:
    assert inputs.lifetime(text) == seconds


@pytest.mark.parametrize(
    ("text", "problem"),
    [("soon", "expected a number with a unit"), ("30s", "at least one minute"), ("", "unit")],
)
def test_bad_lifetimes_say_what_is_allowed(text: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        inputs.lifetime(text)


def test_role_bindings_are_read_and_checked() -> None:
    assert inputs.role_bindings("default/*=viewer team/*=developer,admin") == {
        "default/*": ["viewer"],
        "team/*": ["developer", "admin"],
    }
    with pytest.raises(ValueError, match="expected NAMESPACE/ENVIRONMENT=ROLE"):
        inputs.role_bindings("team=viewer")
    with pytest.raises(ValueError, match="unknown role owner; allowed: viewer, developer"):
        inputs.role_bindings("team/*=owner")
    with pytest.raises(ValueError, match="at least one"):
        inputs.role_bindings("  ")


def test_passwords_must_be_given_twice_the_same() -> None:
    assert inputs.password("s3cret", "s3cret") == "s3cret"
    with pytest.raises(ValueError, match="differ"):
        inputs.password("s3cret", "s3cre7")
    with pytest.raises(ValueError, match="empty"):
        inputs.password("")


def test_the_current_step_is_the_last_one_opened_and_not_ended() -> None:
    log = (
        "2026-01-01T00:00:00Z [build] build 1 of default/demo\n"
        "2026-01-01T00:00:00Z [solve] --- solve ---\n"
        "2026-01-01T00:00:01Z [solve] solve done in 1.00s\n"
        "2026-01-01T00:00:01Z [install] --- install ---\n"
        "2026-01-01T00:00:01Z [install] linking kiln-demo-tool\n"
    )
    assert current_step(log) == "install"
    assert current_step(log + "2026-01-01T00:00:02Z [install] install done in 0.50s\n") is None
    assert current_step("") is None


def test_the_stores_disks_are_read_from_metrics() -> None:
    metrics = "\n".join(
        [
            "# HELP kiln_store_filesystem_size_bytes Size of the file system",
            'kiln_store_filesystem_size_bytes{host="vm",path="/var/lib/kiln/store"} 1.0e+11',
            'kiln_store_filesystem_used_bytes{host="vm",path="/var/lib/kiln/store"} 2.5e+10',
            'kiln_store_filesystem_free_bytes{host="vm",path="/var/lib/kiln/store"} 7.5e+10',
            'kiln_store_size_bytes{host="vm",path="/var/lib/kiln/store"} 123456.0',
            'kiln_builds{status="FAILED"} 1.0',
        ]
    )
    assert admin.store_disks(metrics) == [
        admin.StoreDisk("vm", "/var/lib/kiln/store", 10**11, 25 * 10**9, 75 * 10**9, 123456)
    ]
    assert admin.store_disks("") == []


@pytest.mark.parametrize(
    ("text", "current", "value"),
    [
        ("4", None, 4),
        ("INFO", "WARNING", "INFO"),
        ("123", "name", "123"),
        ('"quoted"', "name", "quoted"),
        ('["a", "b"]', [], ["a", "b"]),
        ("not json", None, "not json"),
        ("true", False, True),
        ("null", 3, None),
    ],
)
def test_typed_values_mean_what_they_look_like(text: str, current: object, value: object) -> None:
    assert typed_value(text, current) == value


def test_sources_are_shortened_for_the_table() -> None:
    assert short_source("file /var/lib/kiln/kiln_config.py") == "file"
    assert short_source("environment KILN_PORT") == "env KILN_PORT"
    assert short_source("default (follows CondaStore.store_directory: file x)") == (
        "default (CondaStore.store_directory)"
    )
    assert short_source("default") == "default"


def test_values_are_written_short_and_steady_ones_are_masked() -> None:
    assert (size(512), size(1536), size(5 * 1024**3)) == ("512 B", "1.5 KiB", "5.0 GiB")
    assert (duration(45), duration(185), duration(7800), duration(90000)) == (
        "45s",
        "3m 05s",
        "2h 10m",
        "1d 01h",
    )
    now = datetime(2030, 1, 1, tzinfo=UTC)
    real = Formats(clock=lambda: now)
    assert real.age(now - timedelta(seconds=75)) == "1m 15s ago"
    assert real.log_line("2030-01-01T10:11:12Z [solve] x") == "10:11:12 [solve] x"
    steady = Formats(clock=lambda: now, steady=True)
    assert steady.pid(4242) == "#####" and steady.moment(now) == "YYYY-MM-DD hh:mm"
    assert steady.server("http://127.0.0.1:40123/kiln") == "http://127.0.0.1:PORT/kiln"
    assert steady.path("/tmp/pytest-1/x/data") == ".../data"


def test_the_servers_error_message_is_what_the_console_shows() -> None:
    refused = httpx.Response(
        409, json={"status": "error", "message": "build 1 is current", "code": "conflict"}
    )
    assert error_message(refused) == ("build 1 is current", "conflict")
    invalid = httpx.Response(
        400,
        json={"message": "Validation failed", "extra": [{"key": "size", "message": "too big"}]},
    )
    assert error_message(invalid) == ("Validation failed; size: too big", None)
    proxy = httpx.Response(502, text="<html>Bad Gateway</html>")
    assert error_message(proxy) == ("502 Bad Gateway: <html>Bad Gateway</html>", None)
