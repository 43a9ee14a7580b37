from django.urls import path

from example_app import views

urlpatterns = [
    path("enqueue/", views.enqueue),
    path("records/", views.records),
    path("word-count/", views.enqueue_word_count),
    path("word-count/<str:result_id>/", views.word_count_result),
]
