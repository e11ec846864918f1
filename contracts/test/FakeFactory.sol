// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @title FakeFactory: emits Uniswap's creation events for pools it never created.
/// @notice For tests of pool discovery: the events carry the real signatures (V2 `PairCreated`,
/// V3 `PoolCreated`) and name whatever address the caller chooses; the contract answers no
/// `getPair` / `getPool` lookup.
contract FakeFactory {
    event PairCreated(address indexed token0, address indexed token1, address pair, uint256);
    event PoolCreated(
        address indexed token0,
        address indexed token1,
        uint24 indexed fee,
        int24 tickSpacing,
        address pool
    );

    /// @notice Emit a V2 `PairCreated` naming `pair`.
    function announcePair(address token0, address token1, address pair) external {
        emit PairCreated(token0, token1, pair, 1);
    }

    /// @notice Emit a V3 `PoolCreated` naming `pool`.
    function announcePool(address token0, address token1, uint24 fee, int24 spacing, address pool)
        external
    {
        emit PoolCreated(token0, token1, fee, spacing, pool);
    }
}
