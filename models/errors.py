"""Errors a caller sees. Every one becomes ``{"error": code, "message": ...}`` with ``status``."""


class ApiError(Exception):
    status = 500
    code = "internal_error"


class WorkerUnavailableError(ApiError):
    """The inference worker did not answer (restarting, overloaded): safe to retry."""

    status = 503
    code = "worker_unavailable"

    def __init__(self, message: str = "the inference worker did not answer; retry") -> None:
        super().__init__(message)
