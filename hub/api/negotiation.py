"""Content negotiation for the v1 API: JSON only, and `?format=` left alone.

DRF treats `?format=` as a renderer override and answers 404 for an unknown
one, but Civitai's download URLs use `format=SafeTensor` for the file format.
Every v1 endpoint renders JSON, so the first renderer is always the answer
(which also skips parsing the Accept header on each request).
"""
from __future__ import annotations

from rest_framework.negotiation import DefaultContentNegotiation


class JsonOnlyNegotiation(DefaultContentNegotiation):
    def select_renderer(self, request, renderers, format_suffix=None):
        renderer = renderers[0]
        return renderer, renderer.media_type
