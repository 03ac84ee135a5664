"""An upload in, a prediction out: the HTTP serving layer around ``models/``.

The settings, the errors and their handlers, the edge (token, limits, upload checks), decoding
uploads into model pixels, the predictions' JSON, in-process batching, graceful shutdown, the
OpenAPI document and the pages, the Open Inference Protocol, and the offline predict command.
``service.py`` declares the BentoML services from these parts. Nothing here imports ``train/``.
"""
