from django.urls import path

from detection import views

app_name = "detection"
urlpatterns = [
    path("", views.model_page, name="model"),
    path("<int:site_id>/", views.model_page, name="model_site"),
]
