// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @title HookToken: an ERC-20 whose every transfer calls out, as ERC-777 hooks do.
/// @notice For tests only: anyone may mint and set the hook. After each balance change the token
/// calls `hookTarget` with `hookData` (when a target is set). In strict mode a failed hook call
/// fails the transfer with the callee's revert; otherwise the failure is counted and the transfer
/// goes on, so a test can see that the re-entry was refused without the trade failing.
contract HookToken {
    string public constant name = "Hook Token";
    string public constant symbol = "HOOK";
    uint8 public constant decimals = 18;
    uint256 public totalSupply;
    mapping(address => uint256) public balanceOf;
    mapping(address => mapping(address => uint256)) public allowance;

    address public hookTarget;
    bytes public hookData;
    bool public strict;
    uint256 public hookCalls;
    uint256 public hookFailures;
    bool private _inHook;

    event Transfer(address indexed from, address indexed to, uint256 value);
    event Approval(address indexed owner, address indexed spender, uint256 value);

    /// @notice Call `target` with `data` on every transfer (zero target: no hook).
    function setHook(address target, bytes calldata data, bool strict_) external {
        hookTarget = target;
        hookData = data;
        strict = strict_;
    }

    function approve(address spender, uint256 value) external returns (bool) {
        allowance[msg.sender][spender] = value;
        emit Approval(msg.sender, spender, value);
        return true;
    }

    function transfer(address to, uint256 value) external returns (bool) {
        _transfer(msg.sender, to, value);
        return true;
    }

    function transferFrom(address from, address to, uint256 value) external returns (bool) {
        uint256 allowed = allowance[from][msg.sender];
        if (allowed != type(uint256).max) {
            require(allowed >= value, "HookToken: allowance");
            allowance[from][msg.sender] = allowed - value;
        }
        _transfer(from, to, value);
        return true;
    }

    /// @notice Create `value` tokens for `to`; unrestricted, and without the hook.
    function mint(address to, uint256 value) external {
        totalSupply += value;
        balanceOf[to] += value;
        emit Transfer(address(0), to, value);
    }

    function _transfer(address from, address to, uint256 value) private {
        require(balanceOf[from] >= value, "HookToken: balance");
        balanceOf[from] -= value;
        balanceOf[to] += value;
        emit Transfer(from, to, value);
        if (hookTarget == address(0) || _inHook) return;
        _inHook = true;
        hookCalls += 1;
        (bool ok, bytes memory reason) = hookTarget.call(hookData);
        _inHook = false;
        if (ok) return;
        if (strict) {
            assembly {
                revert(add(reason, 32), mload(reason))
            }
        }
        hookFailures += 1;
    }
}
