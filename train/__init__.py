"""Training: CelebA and the synthetic set, the Lightning pipeline, the report, into the store.

``pipeline.py`` runs a ``TrainingConfig`` end to end; ``cli.py`` is ``python -m train``. Stands on
``models/`` for the network, preprocessing, export and store; never imports ``serving/``.
"""
