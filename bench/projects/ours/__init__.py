"""The benchmark project for lambda-tasks (this repository's packages)."""
