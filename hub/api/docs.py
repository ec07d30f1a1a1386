"""The API docs pages: Swagger UI and Redoc from drf-spectacular-sidecar's static files.

Both must render with no internet access (the README promises nothing from a
CDN). The sidecar ships the scripts; Redoc's stock template would still load
Google fonts (our template leaves them out) and its bundle shows a logo from
cdn.redoc.ly that no setting turns off, so the pages carry a Content Security
Policy that confines them to this origin: the browser never even asks.
"""
from __future__ import annotations

from drf_spectacular.views import SpectacularRedocView, SpectacularSwaggerView

# Inline scripts and styles: both templates initialise their UI inline. Redoc
# builds its search index in a worker from a blob: URL.
DOCS_CSP = "; ".join([
    "default-src 'self'",
    "script-src 'self' 'unsafe-inline'",
    "style-src 'self' 'unsafe-inline'",
    "img-src 'self' data:",
    "font-src 'self' data:",
    "connect-src 'self'",
    "worker-src 'self' blob:",
])


class _SameOriginOnly:
    # The pages are rendered by an HTML-template renderer, which has nothing to say to OPTIONS.
    http_method_names = ["get", "head"]

    def get(self, request, *args, **kwargs):
        response = super().get(request, *args, **kwargs)
        response["Content-Security-Policy"] = DOCS_CSP
        return response


class SwaggerDocsView(_SameOriginOnly, SpectacularSwaggerView):
    pass


class RedocDocsView(_SameOriginOnly, SpectacularRedocView):
    template_name = "frontend/api_redoc.html"
