from django.contrib import admin
from django.urls import include, path, re_path

from config.views import home
from monitoring.views import metrics

urlpatterns = [
    path("", home, name="home"),
    path("admin/", admin.site.urls),
    path("api/", include("config.api_urls")),
    re_path(r"^metrics/?$", metrics, name="metrics"),
]
