"""Turning an opportunity into a transaction: the executor contract and its calldata.

``route_codec`` encodes a sized route for ``ArbExecutor.execute`` (pure, eth_abi only);
``contract`` builds the contract, checks it against its lock file and deploys it on a devnet.
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
