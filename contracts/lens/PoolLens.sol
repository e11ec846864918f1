// SPDX-License-Identifier: MIT
pragma solidity ^0.8.20;

interface IPairLike {
    function getReserves() external view returns (uint112, uint112, uint32);
}

interface IPoolLike {
    function slot0() external view returns (uint160, int24, uint16, uint16, uint16, uint8, bool);
    function liquidity() external view returns (uint128);
    function tickBitmap(int16 wordPosition) external view returns (uint256);
    function ticks(int24 tick)
        external
        view
        returns (uint128, int128, uint256, uint256, int56, uint160, uint32, bool);
}

/// @title PoolLens
/// @notice Reads the state of many pools in one `eth_call`. It is never deployed: the call
/// sends its creation code, the constructor reads the pools and returns the result as the
/// "code" of the contract being created, which `eth_call` hands back.
/// @dev Jobs, in order, each appending to one flat int256 array:
///   kind 0 (V2 pair):   reserve0, reserve1
///   kind 1 (V3 pool):   sqrtPriceX96, tick, liquidity
///   kind 2 (V3 ticks):  n, then n x (tick, liquidityNet, liquidityGross) for every initialized
///                       tick in bitmap words wordFrom..wordTo (inclusive)
contract PoolLens {
    struct Job {
        address pool;
        uint8 kind;
        int24 spacing;
        int16 wordFrom;
        int16 wordTo;
    }

    constructor(Job[] memory jobs) {
        int256[][] memory parts = new int256[][](jobs.length);
        uint256 total = 0;
        for (uint256 i = 0; i < jobs.length; i++) {
            parts[i] = _run(jobs[i]);
            total += parts[i].length;
        }
        int256[] memory out = new int256[](total);
        uint256 at = 0;
        for (uint256 i = 0; i < parts.length; i++) {
            int256[] memory part = parts[i];
            for (uint256 j = 0; j < part.length; j++) {
                out[at++] = part[j];
            }
        }
        bytes memory encoded = abi.encode(out);
        assembly {
            return(add(encoded, 32), mload(encoded))
        }
    }

    function _run(Job memory job) private view returns (int256[] memory result) {
        if (job.kind == 0) {
            (uint112 r0, uint112 r1,) = IPairLike(job.pool).getReserves();
            result = new int256[](2);
            result[0] = int256(uint256(r0));
            result[1] = int256(uint256(r1));
        } else if (job.kind == 1) {
            IPoolLike pool = IPoolLike(job.pool);
            (uint160 price, int24 tick,,,,,) = pool.slot0();
            result = new int256[](3);
            result[0] = int256(uint256(price));
            result[1] = int256(tick);
            result[2] = int256(uint256(pool.liquidity()));
        } else {
            result = _ticks(IPoolLike(job.pool), job.spacing, job.wordFrom, job.wordTo);
        }
    }

    function _ticks(IPoolLike pool, int24 spacing, int16 wordFrom, int16 wordTo)
        private
        view
        returns (int256[] memory result)
    {
        uint256 count = uint256(int256(wordTo) - int256(wordFrom) + 1);
        uint256[] memory words = new uint256[](count);
        uint256 found = 0;
        for (uint256 i = 0; i < count; i++) {
            uint256 word = pool.tickBitmap(int16(int256(wordFrom) + int256(i)));
            words[i] = word;
            while (word != 0) {
                word &= word - 1;
                found++;
            }
        }
        result = new int256[](1 + 3 * found);
        result[0] = int256(found);
        uint256 at = 1;
        for (uint256 i = 0; i < count; i++) {
            uint256 word = words[i];
            for (uint256 bit = 0; word != 0; bit++) {
                if (word & 1 == 1) {
                    int24 tick = int24((int256(wordFrom) + int256(i)) * 256 + int256(bit)) * spacing;
                    (uint128 gross, int128 net,,,,,,) = pool.ticks(tick);
                    result[at++] = int256(tick);
                    result[at++] = int256(net);
                    result[at++] = int256(uint256(gross));
                }
                word >>= 1;
            }
        }
    }
}
