// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @title RejectEth: an account that refuses every ETH transfer (a coinbase that cannot be paid).
contract RejectEth {
    error Rejected();

    receive() external payable {
        revert Rejected();
    }
}
