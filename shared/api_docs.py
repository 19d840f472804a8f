"""The API documents' page: Swagger UI served by the service itself, from an installed package.

FastAPI's default /docs loads Swagger UI from a CDN, which on a government intranet with no
internet is a blank page. The files come from the installed `fastapi-offline` package (pinned; not
copied into this repository) and are served under /docs/assets/, public whatever the documents'
own access: they are the same for everyone and say nothing about the API.
"""
from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import FileResponse, HTMLResponse

from shared.errors import NotFoundError

SWAGGER_ASSETS = "/docs/assets/"
_SWAGGER_FILES = {"swagger-ui-bundle.js": "text/javascript", "swagger-ui.css": "text/css",
                  "favicon.png": "image/png"}


def swagger_ui_folder() -> Path:
    import fastapi_offline

    return Path(fastapi_offline.__file__).with_name("static")


def install_swagger_ui(app: FastAPI) -> None:
    """/docs as FastAPI makes it, pointing at files this process serves."""
    folder = swagger_ui_folder()

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url="/openapi.json", title=f"{app.title} – API",
            oauth2_redirect_url="/docs/oauth2-redirect",
            swagger_js_url=f"{SWAGGER_ASSETS}swagger-ui-bundle.js",
            swagger_css_url=f"{SWAGGER_ASSETS}swagger-ui.css",
            swagger_favicon_url=f"{SWAGGER_ASSETS}favicon.png",
            # no "validate online" badge: it would call a server on the internet
            swagger_ui_parameters={"validatorUrl": None})

    @app.get("/docs/oauth2-redirect", include_in_schema=False)
    async def swagger_ui_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    @app.get(SWAGGER_ASSETS + "{name}", include_in_schema=False)
    async def swagger_asset(name: str) -> FileResponse:
        media_type = _SWAGGER_FILES.get(name)
        if media_type is None:
            raise NotFoundError(f"no such file {name}")
        return FileResponse(folder / name, media_type=media_type,
                            headers={"Cache-Control": "public, max-age=86400"})


