// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @dev The executor's callbacks, as an attacker would call them.
interface IFlashCallbacks {
    function uniswapV2Call(address sender, uint256 amount0, uint256 amount1, bytes calldata data) external;
    function pancakeCall(address sender, uint256 amount0, uint256 amount1, bytes calldata data) external;
    function uniswapV3SwapCallback(int256 amount0Delta, int256 amount1Delta, bytes calldata data) external;
}

/// @title FakePair: a "pair" that looks like a pool and calls an executor back, paying nothing.
/// @notice For tests of the executor's callback checks. It exposes `token0()`/`token1()` like a
/// pool (the 2022 BSC attack), calls the callbacks directly (`call*`), and, when an executor calls
/// its V2 or V3 `swap`, calls back without sending anything, with the data it was given or with
/// `tamperedData` if set, once or twice, and (V3) claims `claim` as owed when it is non-zero.
contract FakePair {
    address public immutable token0;
    address public immutable token1;
    bytes public tamperedData;
    bool public twice;
    int256 public claim;

    constructor(address token0_, address token1_) {
        token0 = token0_;
        token1 = token1_;
    }

    /// @notice How `swap` misbehaves: replacement data (empty: echo), call back twice, V3 claim.
    function configure(bytes calldata tamperedData_, bool twice_, int256 claim_) external {
        tamperedData = tamperedData_;
        twice = twice_;
        claim = claim_;
    }

    /// @notice Call `target.uniswapV2Call` directly.
    function callV2(address target, address sender, uint256 amount0, uint256 amount1, bytes calldata data)
        external
    {
        IFlashCallbacks(target).uniswapV2Call(sender, amount0, amount1, data);
    }

    /// @notice Call `target.pancakeCall` directly.
    function callPancake(address target, address sender, uint256 amount0, uint256 amount1, bytes calldata data)
        external
    {
        IFlashCallbacks(target).pancakeCall(sender, amount0, amount1, data);
    }

    /// @notice Call `target.uniswapV3SwapCallback` directly.
    function callV3(address target, int256 amount0Delta, int256 amount1Delta, bytes calldata data) external {
        IFlashCallbacks(target).uniswapV3SwapCallback(amount0Delta, amount1Delta, data);
    }

    /// @notice The V2 pair's swap: sends nothing and calls `to` back when given data (as a
    /// real pair does) or told to tamper.
    function swap(uint256 amount0Out, uint256 amount1Out, address to, bytes calldata data) external {
        bytes memory sent = _sent(data);
        if (sent.length == 0) return;
        IFlashCallbacks(to).uniswapV2Call(msg.sender, amount0Out, amount1Out, sent);
        if (twice) IFlashCallbacks(to).uniswapV2Call(msg.sender, amount0Out, amount1Out, sent);
    }

    /// @notice The V3 pool's swap: sends nothing and asks the caller for `claim` (or the input).
    function swap(address, bool zeroForOne, int256 amountSpecified, uint160, bytes calldata data)
        external
        returns (int256 amount0, int256 amount1)
    {
        int256 owed = claim != 0 ? claim : amountSpecified;
        // claim to have sent out as much as was asked in, so the caller goes on
        (amount0, amount1) = zeroForOne ? (owed, -amountSpecified) : (-amountSpecified, owed);
        bytes memory sent = _sent(data);
        IFlashCallbacks(msg.sender).uniswapV3SwapCallback(amount0, amount1, sent);
        if (twice) IFlashCallbacks(msg.sender).uniswapV3SwapCallback(amount0, amount1, sent);
    }

    /// @dev The callback data to send: `tamperedData` if set, else what this contract was given.
    function _sent(bytes calldata data) private view returns (bytes memory) {
        if (tamperedData.length != 0) return tamperedData;
        return data;
    }
}
