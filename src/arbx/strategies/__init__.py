"""Strategies: turn chain events into trade decisions."""
