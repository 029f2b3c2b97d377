"""URL routes of the HTTP side (gunicorn). WebSocket routes are in ``chat.routing``."""

from django.contrib import admin
from django.urls import include, path

from switchyard.health import healthz

urlpatterns = [
    path("healthz", healthz, name="healthz"),  # normally answered by HealthCheckMiddleware
    path("accounts/", include("django.contrib.auth.urls")),
    path("admin/", admin.site.urls),
    path("", include("chat.urls")),
]
