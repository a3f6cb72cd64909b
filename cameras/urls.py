from django.urls import path

from cameras import views

app_name = "cameras"
urlpatterns = [
    path("", views.camera_status, name="status"),
    path("poll/", views.camera_wall_poll, name="poll"),
    path("<int:camera_id>/live.jpg", views.camera_live_frame, name="live"),
]
