"""ARBITRAGEXPLUS-II: a DEX-arbitrage searcher for EVM chains."""

__version__ = "0.2.0"
