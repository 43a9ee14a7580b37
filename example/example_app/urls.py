from django.urls import path

from example_app import views

urlpatterns = [
    path("enqueue/", views.enqueue),
    path("records/", views.records),
]
