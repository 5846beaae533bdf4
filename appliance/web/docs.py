"""``<prefix>/docs``: the API reference as one HTML page rendered from the OpenAPI document.

Litestar's bundled viewers (Swagger UI, ReDoc, Scalar) load their JavaScript from a CDN, which
air-gapped sites cannot reach; this page needs nothing but the server. The machine-readable
document is at ``<prefix>/openapi.json``.
"""

from __future__ import annotations

import html
from typing import Any

from litestar import Request, Response, get
from litestar.enums import OpenAPIMediaType
from litestar.handlers import HTTPRouteHandler
from litestar.openapi.plugins import OpenAPIRenderPlugin

_METHODS = ("get", "head", "post", "put", "patch", "delete")

_STYLE = """
body{font:15px/1.5 system-ui,sans-serif;max-width:70rem;margin:2rem auto;padding:0 1rem;
color:#1b1b1b}
h1{margin-bottom:.2rem}code{font:13px ui-monospace,monospace}
.op{border:1px solid #ccc;border-radius:6px;margin:.6rem 0;padding:.5rem .8rem}
.m{display:inline-block;min-width:4.2rem;font-weight:700;text-transform:uppercase}
.get{color:#05603a}.post{color:#1d4ed8}.put{color:#92400e}.delete{color:#b91c1c}
.head,.patch{color:#444}table{border-collapse:collapse;margin:.3rem 0}
td,th{border-bottom:1px solid #eee;padding:.15rem .6rem;text-align:left;vertical-align:top}
"""


class DocsPage(OpenAPIRenderPlugin):
    """Every operation, grouped by tag: method, path, summary, id and parameters."""

    def render(self, request: Request[Any, Any, Any], openapi_schema: dict[str, Any]) -> bytes:
        info = openapi_schema.get("info", {})
        groups: dict[str, list[str]] = {}
        for path, item in sorted(openapi_schema.get("paths", {}).items()):
            for method in _METHODS:
                operation = item.get(method)
                if operation is None:
                    continue
                tag = (operation.get("tags") or ["other"])[0]
                groups.setdefault(tag, []).append(_operation(method, path, operation))
        sections = "".join(
            f"<h2 id='{html.escape(tag)}'>{html.escape(tag)}</h2>{''.join(ops)}"
            for tag, ops in sorted(groups.items())
        )
        title = html.escape(f"{info.get('title', 'API')} {info.get('version', '')}")
        page = (
            f"<!doctype html><html lang='en'><head><meta charset='utf-8'>"
            f"<meta name='viewport' content='width=device-width,initial-scale=1'>"
            f"<title>{title}</title><style>{_STYLE}</style></head><body>"
            f"<h1>{title}</h1><p>{html.escape(info.get('description', ''))} "
            f"Machine-readable: <a href='openapi.json'>openapi.json</a>.</p>{sections}"
            "</body></html>"
        )
        return page.encode()


def _operation(method: str, path: str, operation: dict[str, Any]) -> str:
    rows = "".join(
        f"<tr><td><code>{html.escape(p.get('name', ''))}</code></td>"
        f"<td>{html.escape(p.get('in', ''))}</td>"
        f"<td>{'required' if p.get('required') else ''}</td></tr>"
        for p in operation.get("parameters", [])
    )
    table = f"<table>{rows}</table>" if rows else ""
    return (
        f"<div class='op'><span class='m {method}'>{method}</span> "
        f"<code>{html.escape(path)}</code> — {html.escape(operation.get('summary', ''))} "
        f"<small>(<code>{html.escape(operation.get('operationId', ''))}</code>)</small>"
        f"{table}</div>"
    )


def openapi_document(path: str) -> HTTPRouteHandler:
    """``GET <path>``: the OpenAPI document (also at ``<prefix>/docs/openapi.json``)."""

    @get(
        path,
        include_in_schema=False,
        media_type=OpenAPIMediaType.OPENAPI_JSON,
        sync_to_thread=False,
    )
    def document(request: Request[Any, Any, Any]) -> Response[bytes]:
        schema = request.app.openapi_schema.to_schema()
        return Response(
            OpenAPIRenderPlugin.render_json(request, schema),
            media_type=OpenAPIMediaType.OPENAPI_JSON,
        )

    return document
