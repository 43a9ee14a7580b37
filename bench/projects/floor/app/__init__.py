"""The floor project's one app: a results model, as any task library of this design has."""
