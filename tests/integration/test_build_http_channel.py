"""Channels over HTTP: a real HTTP server on 127.0.0.1 serving the demo channel.

Repodata is fetched once, kept in the shared repodata cache and reused by later builds.
"""

from __future__ import annotations

import asyncio
import functools
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from appliance.builder.pipeline import Builder, BuildRequest
from appliance.builder.settings import BuildSettings
from appliance.builder.solve import repodata_gateway
from appliance.common.errors import ChannelError
from appliance.schemas.specification import parse_specification
from appliance.storage import LocalArtifactStore


@dataclass
class ChannelServer:
    url: str
    requests: list[str] = field(default_factory=list)

    def fetches(self, suffix: str) -> int:
        return sum(
            1
            for line in self.requests
            if line.split()[1].endswith(suffix) and line.split()[2] == "200"
        )


@pytest.fixture
def channel_server(demo_channel: Path) -> Iterator[ChannelServer]:
    server_info = ChannelServer(url="")

    class Handler(SimpleHTTPRequestHandler):
        def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
            server_info.requests.append(f"{self.command} {self.path} {code}")

    handler = functools.partial(Handler, directory=str(demo_channel))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server_info.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, name="channel-server", daemon=True)
    thread.start()
    try:
        yield server_info
    finally:
        server.shutdown()
        server.server_close()


SPEC = "name: web\ndependencies:\n  - kiln-demo-tool\n"


def test_a_channel_over_http_builds_and_its_repodata_is_fetched_once(
    channel_server: ChannelServer, build_settings: BuildSettings, local_storage: LocalArtifactStore
) -> None:
    settings = replace(
        build_settings,
        default_channels=(channel_server.url,),
        allowed_channels=(channel_server.url,),
    )
    builder = Builder(settings, local_storage, repodata_gateway(settings.repodata_cache))
    first = asyncio.run(builder.build(BuildRequest("default", parse_specification(SPEC), 1)))
    second = asyncio.run(builder.build(BuildRequest("default", parse_specification(SPEC), 2)))
    assert {p.name for p in first.packages} == {p.name for p in second.packages}
    assert all(p.channel.startswith(channel_server.url) for p in first.packages)
    assert channel_server.fetches("/linux-64/repodata.json") == 1
    assert channel_server.fetches("/noarch/repodata.json") == 1
    assert any(settings.repodata_cache.rglob("*")), "nothing was written to the repodata cache"


def test_an_unreachable_channel_is_reported_as_such(
    build_settings: BuildSettings, local_storage: LocalArtifactStore
) -> None:
    url = "http://127.0.0.1:9"  # discard port: nothing listens there
    settings = replace(build_settings, default_channels=(url,), allowed_channels=(url,))
    builder = Builder(settings, local_storage, repodata_gateway(settings.repodata_cache))
    with pytest.raises(ChannelError, match=r"cannot read channel repodata .*Connection refused"):
        asyncio.run(builder.build(BuildRequest("default", parse_specification(SPEC), 1)))
