"""Benchmarks: our engine against degenbot 0.3.0 on the same states (``make bench``).

Benchmarks measure; tests check behaviour. Each case times both sides with ``timeit`` (median of
several repeats) and checks that both sides agree, so a fast wrong answer cannot pass.
"""
