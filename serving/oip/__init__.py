"""The Open Inference Protocol (KServe v2, Triton's HTTP API): its wire format and its routes.

``wire.py`` reads requests and writes responses, JSON and binary tensors, with nothing of HTTP;
``routes.py`` serves ``/v2/...`` on the service's FastAPI app with it.
"""
