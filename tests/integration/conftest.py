"""Fixtures for the integration tests: one anvil for the whole session, with Uniswap deployed.

The session starts anvil itself (from node_modules) and stops it at the end. Tests that change
chain state own what they change (their own pairs and pools), or restore a snapshot.
"""

import os
import random
from collections.abc import Iterator

import pytest
from eth_typing import ChecksumAddress

from arbx.devnet.anvil import Anvil, start_anvil
from arbx.devnet.chain import DevChain
from arbx.devnet.deploy import (
    TEST_TOKEN_DECIMALS,
    UniswapDeployment,
    deploy_test_tokens,
    deploy_uniswap,
)

DIFF_CASES_ENV = "ARBX_DIFF_CASES"
DIFF_SEED_ENV = "ARBX_DIFF_SEED"
DEFAULT_DIFF_CASES = 500


def diff_cases() -> int:
    """How many differential cases to run: ``$ARBX_DIFF_CASES``, never fewer than the default."""
    return max(DEFAULT_DIFF_CASES, int(os.environ.get(DIFF_CASES_ENV, DEFAULT_DIFF_CASES)))


def diff_rng(name: str) -> random.Random:
    """A reproducible random source per test module (``$ARBX_DIFF_SEED`` changes every one)."""
    return random.Random(f"{name}:{os.environ.get(DIFF_SEED_ENV, '0')}")


@pytest.fixture(scope="session")
def anvil() -> Iterator[Anvil]:
    """A fresh anvil process for the session."""
    with start_anvil() as node:
        yield node


@pytest.fixture(scope="session")
def chain(anvil: Anvil) -> DevChain:
    """A connection that sends from anvil's first dev account."""
    return DevChain(anvil.url)


@pytest.fixture(scope="session")
def uniswap(chain: DevChain) -> UniswapDeployment:
    """The real Uniswap V2 and V3 contracts, deployed once."""
    return deploy_uniswap(chain)


@pytest.fixture(scope="module")
def tokens(chain: DevChain, uniswap: UniswapDeployment) -> dict[int, ChecksumAddress]:
    """Fresh TestTokens for each module (6, 8, 18 decimals), keyed by decimals; funded sender."""
    addresses = deploy_test_tokens(chain, TEST_TOKEN_DECIMALS, spenders=uniswap.spenders())
    return dict(zip(TEST_TOKEN_DECIMALS, addresses, strict=True))
