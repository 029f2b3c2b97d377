"""
URL configuration for liveboard project.

The `urlpatterns` list routes URLs to views. For more information please see:
    https://docs.djangoproject.com/en/5.2/topics/http/urls/
"""
from django.contrib import admin
from django.urls import include, path
from django.views.generic import TemplateView

from sensors import views as sensors_views

urlpatterns = [
    path("", TemplateView.as_view(template_name="index.html"), name="index"),
    path("location/", include("location.urls")),
    path("sensors/", include("sensors.urls")),
    path("api/readings/", sensors_views.post_reading, name="api-readings"),
    path("admin/", admin.site.urls),
]
