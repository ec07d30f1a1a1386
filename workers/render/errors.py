"""Errors a render can end with. Their messages are shown to users as the job's reason."""
from __future__ import annotations


class RenderError(ValueError):
    """A render that cannot succeed however often it is retried (bad request or bad input file)."""


class RenderSpecError(RenderError):
    """The prompt configuration is invalid; `field` names the offending part."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field = field


class RenderInputError(RenderError):
    """A checkpoint, LoRA or base config could not be loaded (corrupt, wrong architecture, missing)."""
