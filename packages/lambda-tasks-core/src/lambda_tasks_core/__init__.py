"""lambda-tasks core."""
