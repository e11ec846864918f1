// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

interface IV2PairLike {
    function token0() external view returns (address);
    function token1() external view returns (address);
    function swap(uint256 amount0Out, uint256 amount1Out, address to, bytes calldata data) external;
}

interface IERC20Like {
    function transfer(address to, uint256 value) external returns (bool);
}

/// @title V2Probe: asks a real Uniswap V2 pair which (input, output) pairs its K check accepts.
/// @notice Meant for eth_call. Each attempt transfers the input to the pair and calls
/// `pair.swap`, then reverts to undo both, so every attempt sees the same pair state. The probe
/// pays from its own balance: fund it with the pair's tokens first.
contract V2Probe {
    /// @dev Raised at the end of an attempt the pair accepted, to roll it back.
    error Accepted();

    /// @notice For each i: would `pair` accept `amountsIn[i]` of one token for `amountsOut[i]`
    /// of the other? `reasons[i]` is the revert data of a rejected attempt.
    function accepts(
        address pair,
        bool zeroForOne,
        uint256[] calldata amountsIn,
        uint256[] calldata amountsOut
    ) external returns (bool[] memory ok, bytes[] memory reasons) {
        require(amountsIn.length == amountsOut.length, "V2Probe: lengths");
        ok = new bool[](amountsIn.length);
        reasons = new bytes[](amountsIn.length);
        for (uint256 i = 0; i < amountsIn.length; ++i) {
            try this.attempt(pair, zeroForOne, amountsIn[i], amountsOut[i]) {
                reasons[i] = "V2Probe: attempt returned";
            } catch (bytes memory reason) {
                if (reason.length == 4 && bytes4(reason) == Accepted.selector) {
                    ok[i] = true;
                } else {
                    reasons[i] = reason;
                }
            }
        }
    }

    /// @notice One attempt; always reverts (with `Accepted()` if the pair took the trade).
    function attempt(address pair, bool zeroForOne, uint256 amountIn, uint256 amountOut) external {
        require(msg.sender == address(this), "V2Probe: self only");
        IV2PairLike target = IV2PairLike(pair);
        address tokenIn = zeroForOne ? target.token0() : target.token1();
        require(IERC20Like(tokenIn).transfer(pair, amountIn), "V2Probe: transfer");
        (uint256 out0, uint256 out1) = zeroForOne ? (uint256(0), amountOut) : (amountOut, uint256(0));
        target.swap(out0, out1, address(this), "");
        revert Accepted();
    }
}
