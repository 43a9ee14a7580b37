"""lambda-tasks django."""
