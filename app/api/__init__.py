"""The operator API (/api/v1): JSON over the same core operations the CLI runs."""
