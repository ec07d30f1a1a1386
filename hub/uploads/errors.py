from __future__ import annotations


class UploadError(Exception):
    """A request the upload protocol refuses; `code` is stable, the message is for people."""

    def __init__(self, code: str, message: str, *, status: int = 400, details: dict | None = None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status
        self.details = details
