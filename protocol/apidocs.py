"""Swagger UI and ReDoc served by the API itself (fastapi-offline's files, gzip-compressed),
never from a CDN."""

from __future__ import annotations

from pathlib import Path
from typing import Final

import fastapi_offline
from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from starlette.middleware.gzip import GZipMiddleware

__all__ = ["DOCS_ASSETS_PATH", "serve_docs"]

#: Where the documentation pages' scripts, styles and icon are served.
DOCS_ASSETS_PATH: Final = "/docs-assets"
_STATIC: Final = Path(fastapi_offline.__file__).resolve().parent / "static"


def serve_docs(app: FastAPI, docs_url: str = "/docs", redoc_url: str = "/redoc") -> None:
    """Serves Swagger UI at `docs_url` and ReDoc at `redoc_url` from the app's own assets.

    Build the app with `docs_url=None, redoc_url=None` (FastAPI's own pages load from a CDN,
    and are blank offline), then call this.

    Args:
        app: The API.
        docs_url: Path of the Swagger UI page.
        redoc_url: Path of the ReDoc page.
    """
    if app.docs_url is not None or app.redoc_url is not None:
        raise ValueError("build the app with docs_url=None and redoc_url=None first")
    assets = GZipMiddleware(StaticFiles(directory=_STATIC), minimum_size=1024)
    app.mount(DOCS_ASSETS_PATH, assets, name="docs-assets")
    openapi_url = app.openapi_url or "/openapi.json"

    @app.get(docs_url, include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_swagger_ui_html(
            openapi_url=f"{root}{openapi_url}",
            title=f"{app.title} - Swagger UI",
            swagger_js_url=f"{root}{DOCS_ASSETS_PATH}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{DOCS_ASSETS_PATH}/swagger-ui.css",
            swagger_favicon_url=f"{root}{DOCS_ASSETS_PATH}/favicon.png",
            swagger_ui_parameters=app.swagger_ui_parameters,
        )

    @app.get(redoc_url, include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_redoc_html(
            openapi_url=f"{root}{openapi_url}",
            title=f"{app.title} - ReDoc",
            redoc_js_url=f"{root}{DOCS_ASSETS_PATH}/redoc.standalone.js",
            redoc_favicon_url=f"{root}{DOCS_ASSETS_PATH}/favicon.png",
            with_google_fonts=False,
        )
