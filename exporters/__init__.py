"""The same stored model for other servers: a Triton model repository and a TorchServe archive.

The TorchServe handler decodes uploads with ``serving/inference/images.py``, so both answer as the service.
"""
