from django.contrib import admin
from django.urls import include, path

from alerts import auth, push_views
from shoplift import health

admin.site.site_header = "Shoplift detection"
admin.site.site_title = "Shoplift admin"

urlpatterns = [
    path("healthz", health.healthz, name="healthz"),
    # The Web Push service worker: served from the root, it may control every page of the dashboard.
    path("sw.js", push_views.service_worker, name="service_worker"),
    path("login/", auth.login_view, name="login"),
    path("logout/", auth.logout_view, name="logout"),
    path("password/", auth.password_change_view, name="password_change"),
    # The admin's own login form has no rate limit: send it to ours (listed before admin.site.urls).
    path("admin/login/", auth.admin_login_redirect),
    path("admin/", admin.site.urls),
    path("cameras/", include("cameras.urls")),
    path("model/", include("detection.urls")),
    path("", include("alerts.urls")),
]
