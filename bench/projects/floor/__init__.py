"""A Django project without any task library: the floor of a handler's cold start."""
