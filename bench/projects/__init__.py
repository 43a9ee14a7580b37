"""The two small Django projects the benchmark runs, one per package (same settings)."""
