"""Security headers on every response: a Content-Security-Policy and a Permissions-Policy.

The dashboard, the admin and the zone editor use no inline scripts and no inline event
handlers: scripts come from our own static files, data reaches pages as JSON blocks
(`json_script`), which a policy does not block. Styles may be inline (a few style attributes,
and the admin's); images may be data: URIs (the zone editor's snapshot); the clip player plays
from our own URLs. Nothing may frame the pages, and forms post only to this site.
"""
from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

CONTENT_SECURITY_POLICY = "; ".join([
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self' 'unsafe-inline'",
    "img-src 'self' data: blob:",
    "media-src 'self' blob:",
    "connect-src 'self'",
    "font-src 'self'",
    "object-src 'none'",
    "base-uri 'self'",
    "form-action 'self'",
    "frame-ancestors 'none'",
])
# Powerful features the dashboard never uses; notifications stay allowed for the page itself.
PERMISSIONS_POLICY = ", ".join(f"{feature}=()" for feature in (
    "camera", "microphone", "geolocation", "payment", "usb", "serial", "bluetooth", "midi",
    "accelerometer", "gyroscope", "magnetometer", "display-capture", "browsing-topics",
))


class SecurityHeadersMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        response.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        response.headers.setdefault("Permissions-Policy", PERMISSIONS_POLICY)
        return response
