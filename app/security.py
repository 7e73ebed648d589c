"""Response headers and request limits, as one small ASGI middleware.

Everything the pages load is served by this app (plotly.js included), so the Content-Security-
Policy allows only this origin. Plotly adds <style> elements at run time and some pages carry a
page-scoped <style> block, hence 'unsafe-inline' for styles only; scripts are files, never inline.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

CONTENT_SECURITY_POLICY = "; ".join([
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self' 'unsafe-inline'",
    "img-src 'self' data: blob:",
    "connect-src 'self'",
    "object-src 'none'",
    "base-uri 'self'",
    "form-action 'self'",
    "frame-ancestors 'none'",
])
# The API docs page (Swagger UI) starts with an inline script FastAPI writes; it gets
# 'unsafe-inline' for scripts and nothing else. It reflects no user input.
DOCS_PATHS = ("/docs",)
DOCS_POLICY = CONTENT_SECURITY_POLICY.replace("script-src 'self'",
                                              "script-src 'self' 'unsafe-inline'")
SECURITY_HEADERS = [
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
]
MAX_QUERY_BYTES = 2048  # every configuration fits in a few hundred bytes
MAX_BODY_BYTES = 64 * 1024  # also passed to FastAPI(max_body_size=...) for chunked bodies
UPLOAD_PATH = "/api/models"  # model uploads: two files of up to GFL_MODEL_MAX_BYTES each


def upload_body_bytes() -> int:
    """The body limit of a model upload: both files and the multipart framing (the store then
    checks each file against its own limit, with its own 413)."""
    from gradient_flow_lab.app.settings import get_settings

    return 2 * get_settings().model_max_bytes + 64 * 1024


def body_limit(scope: Scope) -> int:
    if scope["path"] == UPLOAD_PATH and scope.get("method") == "POST":
        return upload_body_bytes()
    return MAX_BODY_BYTES


class SecurityMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if len(scope.get("query_string", b"")) > MAX_QUERY_BYTES:
            await _reject(send, 414, f"query string longer than {MAX_QUERY_BYTES} bytes")
            return
        limit = body_limit(scope)
        if _declared_length(scope) > limit:  # said up front: answered here, in JSON
            await _reject(send, 413, f"request body larger than {limit} bytes, the limit")
            return

        headers = SECURITY_HEADERS
        if scope["path"] in DOCS_PATHS:
            headers = [(b"content-security-policy", DOCS_POLICY.encode()), *SECURITY_HEADERS[1:]]

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = list(message.get("headers", [])) + headers
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _declared_length(scope: Scope) -> int:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return 0  # h11 refuses a malformed length before the app sees it
    return 0


async def _reject(send: Send, status: int, message: str) -> None:
    body = ('{"detail":"' + message + '"}').encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode()), *SECURITY_HEADERS]})
    await send({"type": "http.response.body", "body": body})
