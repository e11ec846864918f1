"""Executors: what happens to the opportunities a strategy finds."""
