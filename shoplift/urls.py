from django.contrib import admin
from django.urls import include, path

admin.site.site_header = "Shoplift detection"
admin.site.site_title = "Shoplift admin"

urlpatterns = [
    path("admin/", admin.site.urls),
    path("", include("alerts.urls")),
]
