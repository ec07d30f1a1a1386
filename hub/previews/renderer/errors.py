"""Errors a render can end with.

Each carries two texts: the message (the technical detail, for logs and the
admin: it may name paths and exception types) and ``reason``, a plain
sentence for the model's owner that says what went wrong and what they can
do, and never names a path, a command or an exception.
"""
from __future__ import annotations


class RenderError(ValueError):
    """A render that cannot succeed however often it is retried (bad request or bad input file)."""

    default_reason = "The preview render failed. Check the preview settings and try again."

    def __init__(self, message: str, *, reason: str | None = None):
        super().__init__(message)
        self.reason = reason or self.default_reason


class RenderSpecError(RenderError):
    """The prompt configuration is invalid; `field` names the offending part."""

    def __init__(self, field: str, message: str):
        # The message names a field of the request and the value given: safe and useful to show.
        super().__init__(f"{field}: {message}", reason=f"The preview settings are invalid ({field}: {message}).")
        self.field = field


class RenderInputError(RenderError):
    """A checkpoint, LoRA or base config could not be loaded (corrupt, wrong architecture, missing)."""

    default_reason = (
        "The checkpoint could not be loaded for rendering. It may be damaged, incomplete or of a base model "
        "previews do not support; check the file and upload it again if needed."
    )
