"""The web console, served by the API under /console: the release matrix, apps, approvals and
promotions, with live updates over SSE. Server-rendered pages; one small script of its own."""

from __future__ import annotations

from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from api.console import actions, pages
from api.console.rendering import HERE
from api.console.security import ConsoleHeaders
from api.console.session import SignInRequired


def install_console(app: FastAPI) -> None:
    app.include_router(pages.router)
    app.include_router(actions.router)
    app.mount("/console/static", StaticFiles(directory=HERE / "static"), name="console-static")
    app.add_middleware(ConsoleHeaders)

    @app.get("/", include_in_schema=False)
    def home() -> RedirectResponse:
        return RedirectResponse("/console", 307)

    @app.exception_handler(SignInRequired)
    async def _sign_in(request: Request, _exc: SignInRequired) -> Response:
        if request.method != "GET" or request.url.path == "/console/events":
            return pages.refusal_page(
                request,
                None,
                pages.ApiRefusal(401, "UNAUTHENTICATED", "sign in to the console first"),
            )
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"/console/sign-in?next={quote(target, safe='')}", 303)
