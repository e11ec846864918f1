"""The local chain: anvil, the real Uniswap contracts, our test contracts, deployment."""
