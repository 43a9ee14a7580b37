"""lambda-tasks local."""
