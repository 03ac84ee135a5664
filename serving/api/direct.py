"""The upload routes answered from the edge's own parse of the upload, not through BentoML's.

The edge (``edge.py``) parses every ``/predict``, ``/predict_batch`` and ``/detect`` body to
check it, and hands the uploaded bytes on in the ASGI scope. BentoML's path for an API method would then
parse the multipart body a second time, write each upload to a temporary file for the ``Path``
argument, validate it with pydantic and route it through Starlette's router: measured under 32
clients, about half of the event loop's time per request (``docs/performance.md``). This ASGI
middleware, inside the edge and BentoML's own middlewares (metrics, access log, timeout and
concurrency limit still see every request), answers those routes with the same service method
the API methods call and the same JSON. The API methods stay the declared contract: the OpenAPI
document, ``bentoml.SyncHTTPClient`` and in-process calls.
"""

import logging
from collections.abc import Callable

from pydantic import TypeAdapter

from serving.api.handlers import ASGIApp, Receive, Scope, Send, send_error, send_json_bytes
from serving.errors import ServiceError
from serving.inference.predictions import Prediction
from serving.served import Served, served

logger = logging.getLogger("face_attributes")
UPLOADS_KEY = "face_attributes.uploads"  # in the ASGI scope: the uploaded files' bytes, in order
SEVERAL = TypeAdapter(list[Prediction])


class DirectPredictions:
    def __init__(self, app: ASGIApp, service: Callable[[], Served] = served) -> None:
        """``service``: the running service's instance (tests give their own)."""
        self.app = app
        self.service = service

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        uploads: list[bytes] | None = scope.get(UPLOADS_KEY)
        if uploads is None:
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        try:
            body = await self._answer(path, uploads)
        except ServiceError as error:
            await send_error(send, error, path)
            return
        except Exception:  # a bug must still answer, in the one shape
            logger.exception("POST %s failed", path)
            await send_error(send, ServiceError(), path)
            return
        await send_json_bytes(send, 200, body, [])

    async def _answer(self, path: str, uploads: list[bytes]) -> bytes:
        if path == "/detect":
            return (await self.service().detections(uploads[0])).model_dump_json().encode()
        predictions = await self.service().predictions(uploads)
        return (
            predictions[0].model_dump_json().encode()
            if path == "/predict"
            else SEVERAL.dump_json(predictions)
        )
