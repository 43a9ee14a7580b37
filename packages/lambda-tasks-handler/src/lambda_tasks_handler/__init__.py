"""lambda-tasks handler."""
