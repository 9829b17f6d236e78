"""Access control for the streamable HTTP transport off the loopback: a bearer token on every request
and no browser Origin unless listed. (On the loopback the SDK's own Host/Origin checks apply.)"""

from __future__ import annotations

import hmac
import json

from starlette.types import ASGIApp, Receive, Scope, Send

LOOPBACK = ("127.0.0.1", "localhost", "::1")
TOKEN_VARIABLE = "WHYPREF_MCP_TOKEN"


class BearerAndOrigin:
    """ASGI middleware: 401 without ``Authorization: Bearer <token>``, 403 for an unlisted Origin."""

    def __init__(self, app: ASGIApp, token: str, allowed_origins: tuple[str, ...] = ()) -> None:
        self.app, self.token, self.allowed_origins = app, token.encode(), allowed_origins

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":  # lifespan
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        origin = headers.get("origin")
        if origin is not None and origin not in self.allowed_origins:
            await _refuse(send, 403, f"origin {origin!r} is not allowed (whypref mcp --allow-origin)")
            return
        scheme, _, given = headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), self.token):
            await _refuse(send, 401, "a bearer token is required (Authorization: Bearer $WHYPREF_MCP_TOKEN)")
            return
        await self.app(scope, receive, send)


async def _refuse(send: Send, status: int, message: str) -> None:
    body = json.dumps({"error": message}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if status == 401:
        headers.append((b"www-authenticate", b'Bearer realm="whypref"'))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
