"""Turning an opportunity into a transaction: the executor contract and its calldata.

``route_codec`` encodes a sized route for ``ArbExecutor.execute`` (pure, eth_abi only);
``contract`` loads the shipped executor build; ``deploy`` deploys it from the signing key.
"""

from arbx.execution.route_codec import (
    EXECUTE_SELECTOR,
    EXECUTE_SIGNATURE,
    KIND_V2,
    KIND_V3,
    ExecuteCall,
    ExecutorHop,
    decode_execute,
    encode_execute,
    execute_call,
)

__all__ = [
    "EXECUTE_SELECTOR",
    "EXECUTE_SIGNATURE",
    "KIND_V2",
    "KIND_V3",
    "ExecuteCall",
    "ExecutorHop",
    "decode_execute",
    "encode_execute",
    "execute_call",
]
