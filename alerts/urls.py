from django.urls import path

from alerts import audit_views, case_views, export_views, push_views, stats_views, views

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
    path("alerts/<int:alert_id>/case/", case_views.alert_add_to_case, name="add_to_case"),
    path("cases/", case_views.case_list, name="case_list"),
    path("cases/new/", case_views.case_new, name="case_new"),
    path("cases/<int:case_id>/", case_views.case_detail, name="case_detail"),
    path("cases/<int:case_id>/edit/", case_views.case_edit, name="case_edit"),
    path("cases/<int:case_id>/alerts/add/", case_views.case_add_alert, name="case_add_alert"),
    path("cases/<int:case_id>/alerts/<int:alert_id>/remove/", case_views.case_remove_alert_view,
         name="case_remove_alert"),
    path("cases/<int:case_id>/close/", case_views.case_close_view, name="case_close"),
    path("cases/<int:case_id>/reopen/", case_views.case_reopen_view, name="case_reopen"),
    path("cases/<int:case_id>/export/", export_views.case_export, name="case_export"),
    path("stats/", stats_views.stats_page, name="stats"),
    path("stats/csv/", stats_views.stats_csv, name="stats_csv"),
    path("audit/", audit_views.audit_list, name="audit"),
    path("audit/export.csv", audit_views.audit_export, name="audit_export"),
    path("notifications/", push_views.push_page, name="push"),
    path("notifications/subscribe/", push_views.push_subscribe, name="push_subscribe"),
    path("notifications/<int:subscription_id>/delete/", push_views.push_unsubscribe, name="push_unsubscribe"),
]
