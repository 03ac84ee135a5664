"""The test suite: a fast in-process file per module, and suites against real servers
(``test_service_*.py``, ``test_bento.py``, TorchServe, the pages in Chromium)."""
