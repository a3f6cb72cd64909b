from django.urls import path

app_name = "alerts"
urlpatterns: list = []  # the dashboard (issue 6) adds its views here
