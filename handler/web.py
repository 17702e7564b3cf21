"""The try-it page: static HTML, CSS and JavaScript (handler/static/, no build step) served by the API's own app,
at `/` and `/static/...`. The page calls the API with relative URLs; `/` adds a <base href> naming the root
path, so that behind API Gateway the page and its calls stay under the stage prefix (/prod/)."""

import html
from functools import lru_cache
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

STATIC_DIR = Path(__file__).resolve().parent / "static"


@lru_cache(maxsize=1)
def _page() -> str:
    return (STATIC_DIR / "index.html").read_text(encoding="utf-8")


def page(request: Request) -> HTMLResponse:
    root = request.scope.get("root_path", "").rstrip("/")
    base = f'<base href="{html.escape(root, quote=True)}/">'
    return HTMLResponse(_page().replace("<head>", "<head>\n" + base, 1), headers={"Cache-Control": "no-cache"})


def mount_page(app: FastAPI) -> None:
    app.add_api_route("/", page, methods=["GET"], include_in_schema=False, response_class=HTMLResponse)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
