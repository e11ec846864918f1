"""Chain access: a JSON-RPC client with failover, new heads, and the calls the sync code uses.

    RpcClient(endpoints, timeout=..., retries=...)   call, batch, block_number, chain_id, close
    heads(client, poll_interval=...)                  async iterator of Head, WS or polling
    get_logs(client, ...), eth_call(client, ...)      decoded, strictly checked answers

Errors: ``TransientError`` when every endpoint failed (after retries); ``RpcError`` when a node
answered with an error object, ``ExecutionRevertedError`` (also a ``SimulationRevertedError``)
for a revert.
"""

from arbx.chain.heads import Head, HeadStats, HeadStream, decode_head, heads
from arbx.chain.rpc import (
    Endpoint,
    EndpointHealth,
    ExecutionRevertedError,
    Log,
    RpcClient,
    RpcError,
    RpcStats,
    eth_call,
    get_logs,
    hex_address,
    hex_bytes,
    hex_hash,
    hex_int,
)
from arbx.chain.transport import AiohttpTransport, FailureKind, Transport, TransportError

__all__ = [
    "AiohttpTransport",
    "Endpoint",
    "EndpointHealth",
    "ExecutionRevertedError",
    "FailureKind",
    "Head",
    "HeadStats",
    "HeadStream",
    "Log",
    "RpcClient",
    "RpcError",
    "RpcStats",
    "Transport",
    "TransportError",
    "decode_head",
    "eth_call",
    "get_logs",
    "heads",
    "hex_address",
    "hex_bytes",
    "hex_hash",
    "hex_int",
]
