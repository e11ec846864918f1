// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

interface IV3PoolLike {
    function swap(
        address recipient,
        bool zeroForOne,
        int256 amountSpecified,
        uint160 sqrtPriceLimitX96,
        bytes calldata data
    ) external returns (int256 amount0, int256 amount1);

    function slot0()
        external
        view
        returns (uint160, int24, uint16, uint16, uint16, uint8, bool);

    function liquidity() external view returns (uint128);
}

/// @title V3SwapProbe: the exact outcome of a real Uniswap V3 pool swap, without changing state.
/// @notice Meant for eth_call. The probe calls `pool.swap`; in the callback it reads the pool's
/// post-swap price, tick and liquidity and reverts with them and the swap's amounts, which undoes
/// the swap; it then decodes that revert. Partial fills (the price limit reached first) show as
/// amounts smaller than asked. A swap the pool itself rejects comes back with `ok == false` and
/// the pool's revert data.
contract V3SwapProbe {
    struct Swap {
        bool zeroForOne;
        int256 amountSpecified;
        uint160 sqrtPriceLimitX96;
    }

    struct Result {
        bool ok;
        int256 amount0;
        int256 amount1;
        uint160 sqrtPriceX96;
        int24 tick;
        uint128 liquidity;
        bytes reason;
    }

    /// @dev Carries the outcome out of the callback; 4 + 5 * 32 bytes.
    error SwapResult(int256 amount0, int256 amount1, uint160 sqrtPriceX96, int24 tick, uint128 liquidity);

    /// @notice The outcome of `pool.swap(this, zeroForOne, amountSpecified, sqrtPriceLimitX96)`.
    function probe(address pool, bool zeroForOne, int256 amountSpecified, uint160 sqrtPriceLimitX96)
        public
        returns (Result memory r)
    {
        try IV3PoolLike(pool).swap(address(this), zeroForOne, amountSpecified, sqrtPriceLimitX96, "") {
            r.reason = "V3SwapProbe: swap returned";
        } catch (bytes memory reason) {
            if (reason.length == 164 && bytes4(reason) == SwapResult.selector) {
                assembly {
                    // drop the selector: the length word moves 4 bytes up over it
                    let len := mload(reason)
                    reason := add(reason, 4)
                    mstore(reason, sub(len, 4))
                }
                r.ok = true;
                (r.amount0, r.amount1, r.sqrtPriceX96, r.tick, r.liquidity) =
                    abi.decode(reason, (int256, int256, uint160, int24, uint128));
            } else {
                r.reason = reason;
            }
        }
    }

    /// @notice `probe` for many swaps on one pool, each from the same state.
    function probeMany(address pool, Swap[] calldata swaps) external returns (Result[] memory results) {
        results = new Result[](swaps.length);
        for (uint256 i = 0; i < swaps.length; ++i) {
            Swap calldata s = swaps[i];
            results[i] = probe(pool, s.zeroForOne, s.amountSpecified, s.sqrtPriceLimitX96);
        }
    }

    /// @notice Called by the pool mid-swap: report its state and revert, so nothing is paid.
    function uniswapV3SwapCallback(int256 amount0Delta, int256 amount1Delta, bytes calldata) external view {
        IV3PoolLike pool = IV3PoolLike(msg.sender);
        (uint160 sqrtPriceX96, int24 tick,,,,,) = pool.slot0();
        revert SwapResult(amount0Delta, amount1Delta, sqrtPriceX96, tick, pool.liquidity());
    }
}
