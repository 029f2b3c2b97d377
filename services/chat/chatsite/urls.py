"""URL routes of the chat example's HTTP side (gunicorn). WebSocket routes are in ``chat.routing``."""

from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("accounts/", include("django.contrib.auth.urls")),
    path("admin/", admin.site.urls),
    path("", include("chat.urls")),
]
