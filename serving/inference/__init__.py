"""The request path: upload bytes in, probabilities and their JSON out.

Decoding and preprocessing each upload (``images.py``), finding and aligning faces
(``detection.py``), batching concurrent requests (``batcher.py``), where the blocking work runs
(``placement.py``) and the answers' JSON (``predictions.py``). Nothing here knows HTTP, so the
offline command and TorchServe's handler run the same code.
"""
