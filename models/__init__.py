"""The model and its artifact, shared by ``train/``, ``serving/`` and ``exporters/``.

The network, the attribute names, the preprocessing, the TorchScript export, the loaded runtime,
the model card and the BentoML model store. Nothing here speaks HTTP or imports Lightning.
"""
