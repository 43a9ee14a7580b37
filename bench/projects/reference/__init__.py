"""The benchmark project for the reference package, django-lambda-tasks 0.4.0."""
