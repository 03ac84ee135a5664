"""The pages people open: the Swagger UI at ``/`` and the demo page at ``/ui`` (files in web/).

Both work offline: the Swagger UI's scripts come from BentoML's own bundled copy
(``/static_content``), the demo page's from ``/ui/assets``; no CDN, no analytics.
"""

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles

WEB_DIR = Path(__file__).resolve().parents[2] / "web"


def add_pages(app: FastAPI) -> None:
    """Serve ``/`` (ahead of BentoML's own index page), ``/ui`` and the demo page's assets."""

    @app.get("/", include_in_schema=False)
    def swagger_ui() -> FileResponse:
        return FileResponse(WEB_DIR / "index.html")

    @app.get("/ui", include_in_schema=False)
    def demo_page() -> FileResponse:
        return FileResponse(WEB_DIR / "ui.html")

    @app.get("/ui/", include_in_schema=False)
    def demo_page_with_slash() -> RedirectResponse:
        """The page's relative links need /ui without the slash; relative, so a path prefix stays."""
        return RedirectResponse("../ui", status_code=308)

    app.mount("/ui/assets", StaticFiles(directory=WEB_DIR / "assets"), name="ui-assets")
