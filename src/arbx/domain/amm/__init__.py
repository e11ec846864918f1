"""Exact integer AMM math, ported function by function from the Solidity it mirrors."""
