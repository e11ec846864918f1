"""Observability: logging, metrics and the terminal view."""
