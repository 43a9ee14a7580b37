"""The app holding the benchmark's no-op task (lambda-tasks API)."""
