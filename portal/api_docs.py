"""``/api/docs``: Swagger UI for the JSON API, served from the files the ``fastapi-offline``
package ships (only its static files are used; no CDN: the portal works offline and its Content-Security-Policy allows only itself).
The page has no inline script: ``/static/api-docs.js`` starts Swagger UI on ``/api/openapi.json``."""

from __future__ import annotations

from pathlib import Path

import fastapi_offline
from fastapi import FastAPI
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

ASSETS = "/api/docs/assets"
ASSET_DIR = Path(fastapi_offline.__file__).with_name("static")  # swagger-ui-bundle.js, swagger-ui.css

_PAGE = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>printgate API</title>
<link rel="stylesheet" href="{ASSETS}/swagger-ui.css">
</head><body>
<p><a href="/">printgate portal</a> &middot; OpenAPI description: <a href="/api/openapi.json">/api/openapi.json</a></p>
<div id="swagger-ui"></div>
<script src="{ASSETS}/swagger-ui-bundle.js"></script>
<script src="/static/api-docs.js"></script>
</body></html>
"""


def install(app: FastAPI) -> None:
    app.mount(ASSETS, StaticFiles(directory=ASSET_DIR), name="api-docs-assets")

    @app.get("/api/docs", include_in_schema=False)
    async def _api_docs() -> HTMLResponse:
        return HTMLResponse(_PAGE)
