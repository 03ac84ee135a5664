"""An upload in, a prediction out: the HTTP serving layer around ``models/``.

Grouped by job, each a package whose opening says more:
- ``api/``: the HTTP edge (token, limits, one parse of each upload), error answers, the FastAPI
  app, the OpenAPI document and the pages;
- ``oip/``: the Open Inference Protocol (KServe v2), its wire format and routes;
- ``inference/``: the request path, decoding, face detection, batching and the answers' JSON;
- ``process/``: what each serving process tunes about itself, applied by one call.
Beside them, shared by all: ``settings.py`` (every ``FACE_ATTRIBUTES_*`` variable), ``errors.py``
(every error a caller can get), ``served.py`` (the running service as routes see it) and
``predict.py`` (the offline command). ``service.py`` declares the BentoML services from these
parts. Nothing here imports ``train/``.
"""
