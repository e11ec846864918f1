"""The fault suite: a limited-mode searcher on the devnet with faults injected into its live run.

``python -m chaos`` (``make chaos``) runs every fault, one at a time and then combined, and writes
``build/chaos/report.json``; ``tests/chaos`` runs a few of them inside ``make test``.
"""
