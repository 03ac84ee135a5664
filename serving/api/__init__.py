"""The HTTP API: what a request meets before and after the model, in BentoML's ASGI stack.

The edge (``edge.py``: token, body limits, one parse of each upload with ``multipart.py``), the
upload routes answered from that parse (``direct.py``), errors turned into answers in one place
(``handlers.py``), the FastAPI app with ``/metadata`` and the pages (``app.py``, ``pages.py``) and
the OpenAPI document (``openapi.py``).
"""
