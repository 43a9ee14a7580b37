"""The app holding the benchmark's no-op task (django-lambda-tasks 0.4.0 API)."""
