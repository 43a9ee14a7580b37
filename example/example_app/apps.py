from django.apps import AppConfig


class ExampleAppConfig(AppConfig):
    name = "example_app"
