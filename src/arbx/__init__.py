"""ARBITRAGEXPLUS-II: a DEX-arbitrage searcher for EVM chains."""

__version__ = "0.1.0"
