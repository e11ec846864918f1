"""Pool addresses as their factories derive them with CREATE2 (EIP-1014).

A factory deploys each pool at ``keccak256(0xff ++ factory ++ salt ++ init_code_hash)[12:]``.
Uniswap V2 (and its forks) salt with ``keccak256(token0 ++ token1)`` (``abi.encodePacked``,
``UniswapV2Library.pairFor``); Uniswap V3 with ``keccak256(abi.encode(token0, token1, fee))``
(``PoolAddress.computeAddress``). An address that matches was deployed by that factory from that
init code: nobody else can put code there.
"""

from __future__ import annotations

from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak


def create2_address(deployer: str, salt: bytes, init_code_hash: bytes) -> str:
    """EIP-1014: the address of code created by ``deployer`` with ``salt`` (checksummed)."""
    if len(salt) != 32 or len(init_code_hash) != 32:
        raise ValueError("salt and init code hash are 32 bytes each")
    digest = keccak(b"\xff" + _address_bytes(deployer) + salt + init_code_hash)
    return to_checksum_address(digest[12:])


def v2_pair_address(factory: str, token0: str, token1: str, init_code_hash: str) -> str:
    """UniswapV2Library.pairFor: the pair of two sorted tokens."""
    a, b = _sorted(token0, token1)
    return create2_address(factory, keccak(a + b), _hash_bytes(init_code_hash))


def v3_pool_address(factory: str, token0: str, token1: str, fee: int, init_code_hash: str) -> str:
    """PoolAddress.computeAddress: the pool of two sorted tokens at a fee (hundredths of a bip)."""
    if not 0 <= fee < 1 << 24:
        raise ValueError(f"fee {fee} does not fit a uint24")
    a, b = _sorted(token0, token1)
    salt = keccak(a.rjust(32, b"\0") + b.rjust(32, b"\0") + fee.to_bytes(32, "big"))
    return create2_address(factory, salt, _hash_bytes(init_code_hash))


def is_sorted_pair(token0: str, token1: str) -> bool:
    """True when token0 < token1, the order every Uniswap factory stores."""
    return _address_bytes(token0) < _address_bytes(token1)


def _sorted(token0: str, token1: str) -> tuple[bytes, bytes]:
    a, b = _address_bytes(token0), _address_bytes(token1)
    if not a < b:
        raise ValueError("token0 must sort below token1")
    return a, b


def _address_bytes(address: str) -> bytes:
    raw = address[2:] if address[:2] in ("0x", "0X") else address
    if len(raw) != 40:
        raise ValueError(f"not an address: {address!r}")
    return bytes.fromhex(raw)


def _hash_bytes(value: str) -> bytes:
    raw = value[2:] if value[:2] in ("0x", "0X") else value
    if len(raw) != 64:
        raise ValueError("an init code hash is 32 bytes")
    return bytes.fromhex(raw)
