from django.urls import path

from alerts import export_views, push, views

app_name = "alerts"
urlpatterns = [
    path("", views.alert_list, name="list"),
    path("alerts/poll/", views.alert_poll, name="poll"),
    path("alerts/<int:alert_id>/", views.alert_detail, name="detail"),
    path("alerts/<int:alert_id>/review/", views.alert_review_view, name="review"),
    path("alerts/<int:alert_id>/status/", views.alert_status, name="status"),
    path("alerts/<int:alert_id>/clip/", views.alert_clip, name="clip"),
    path("alerts/<int:alert_id>/download/", views.alert_download, name="download"),
    path("alerts/<int:alert_id>/clip/event/", views.alert_clip, {"part": "event"}, name="event_clip"),
    path("alerts/<int:alert_id>/download/event/", views.alert_download, {"part": "event"}, name="event_download"),
    path("alerts/<int:alert_id>/thumbnail/", views.alert_thumbnail, name="thumbnail"),
    path("alerts/<int:alert_id>/export/", export_views.alert_export, name="export"),
    path("notifications/", push.push_page, name="push"),
    path("notifications/subscribe/", push.push_subscribe, name="push_subscribe"),
    path("notifications/<int:subscription_id>/delete/", push.push_unsubscribe, name="push_unsubscribe"),
]
