"""Prometheus metrics: what the engine and the API measure, and the HTTP endpoint that serves them.

``registry`` defines every metric in one place, in two registries (the engine's and the API's, so
that each process exposes only its own series); ``record`` holds the typed helpers the rest of the
code calls; ``server`` serves ``/metrics`` and ``/healthz`` on the engine's own port. This package
sits just above the domain so that every layer that measures (chain, execution, engine, executors,
api) can call it without importing anything above itself.
"""
