"""The FastAPI app both topologies mount at ``/``: what BentoML's API methods do not serve.

The model card (``/metadata``), this service's OpenAPI document (``/docs.json``, served ahead of
BentoML's own), the Open Inference Protocol (``/v2``), the Swagger UI and demo pages, and the
error handlers, registered once here.
"""

from typing import Any

from fastapi import FastAPI

from serving.api.handlers import add_error_handlers
from serving.api.pages import add_pages
from serving.inference.predictions import ModelMetadata
from serving.oip import routes as oip_routes
from serving.served import served


def build_app() -> FastAPI:
    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    add_error_handlers(app)
    app.include_router(oip_routes.router)
    add_pages(app)

    @app.get("/metadata")
    def metadata() -> ModelMetadata:
        """The model card: attribute names, thresholds, preprocessing, metrics."""
        return served().metadata()

    @app.get("/docs.json", include_in_schema=False)
    def openapi() -> dict[str, Any]:
        return served().openapi_document()

    return app
