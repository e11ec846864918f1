// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @title BlockingToken: an ERC-20 whose transfers out of chosen accounts fail ("salmonella").
/// @notice For tests only: anyone may mint and block. A blocked account can receive (buy) but not
/// send (sell); the failed transfer reverts, or returns false when `quiet` is set (as some old
/// tokens do).
contract BlockingToken {
    string public constant name = "Blocking Token";
    string public constant symbol = "BLK";
    uint8 public constant decimals = 18;
    uint256 public totalSupply;
    bool public quiet;
    mapping(address => uint256) public balanceOf;
    mapping(address => mapping(address => uint256)) public allowance;
    mapping(address => bool) public blocked;

    event Transfer(address indexed from, address indexed to, uint256 value);
    event Approval(address indexed owner, address indexed spender, uint256 value);

    /// @notice Block or unblock transfers out of `account`.
    function setBlocked(address account, bool isBlocked) external {
        blocked[account] = isBlocked;
    }

    /// @notice Fail blocked transfers by returning false (true) or by reverting (false).
    function setQuiet(bool quiet_) external {
        quiet = quiet_;
    }

    function approve(address spender, uint256 value) external returns (bool) {
        allowance[msg.sender][spender] = value;
        emit Approval(msg.sender, spender, value);
        return true;
    }

    function transfer(address to, uint256 value) external returns (bool) {
        return _transfer(msg.sender, to, value);
    }

    function transferFrom(address from, address to, uint256 value) external returns (bool) {
        uint256 allowed = allowance[from][msg.sender];
        if (allowed != type(uint256).max) {
            require(allowed >= value, "BlockingToken: allowance");
            allowance[from][msg.sender] = allowed - value;
        }
        return _transfer(from, to, value);
    }

    /// @notice Create `value` tokens for `to`; unrestricted.
    function mint(address to, uint256 value) external {
        totalSupply += value;
        balanceOf[to] += value;
        emit Transfer(address(0), to, value);
    }

    function _transfer(address from, address to, uint256 value) private returns (bool) {
        if (blocked[from]) {
            if (quiet) return false;
            revert("BlockingToken: blocked");
        }
        require(balanceOf[from] >= value, "BlockingToken: balance");
        balanceOf[from] -= value;
        balanceOf[to] += value;
        emit Transfer(from, to, value);
        return true;
    }
}
