// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

/// @dev The two ERC-20 functions the executor uses; `transfer` is called without trusting a
/// return value to exist (see `_transfer`).
interface IERC20Minimal {
    function balanceOf(address account) external view returns (uint256);
    function transfer(address to, uint256 value) external returns (bool);
}

/// @dev WETH9: unwrapped to pay the builder in ETH.
interface IWETH9Minimal {
    function withdraw(uint256 wad) external;
}

/// @dev A Uniswap V2 pair (or a fork): `swap` sends first, calls back if `data` is not empty,
/// then checks its constant product.
interface IUniswapV2PairMinimal {
    function swap(uint256 amount0Out, uint256 amount1Out, address to, bytes calldata data) external;
}

/// @dev A Uniswap V3 pool: `swap` sends the output, then asks its caller to pay in
/// `uniswapV3SwapCallback`.
interface IUniswapV3PoolMinimal {
    function swap(
        address recipient,
        bool zeroForOne,
        int256 amountSpecified,
        uint160 sqrtPriceLimitX96,
        bytes calldata data
    ) external returns (int256 amount0, int256 amount1);
}

/// @title ArbExecutor: one owner-only call runs a whole cyclic route atomically, with no inventory.
/// @notice The first hop is a flash swap (a V2 pair's optimistic transfer or a V3 pool's
/// pay-later swap); inside its callback the other hops run, and the first pool is repaid out of
/// the last hop's output. The call then reverts unless this contract's balance of the base token
/// grew by at least `minProfit` after paying the builder its share (in ETH, to block.coinbase).
/// Every token this contract pays a hop with is what it measured arriving from the hop before
/// (balanceOf before and after), never an amount from the route or a pool's report, so a pool
/// that sends less than it claims cannot make it spend tokens it held before the call.
/// @dev Security model (docs/adr/0006-executor-contract.md):
/// - Only the deployer (`owner`, immutable) may call `execute` and the withdrawals.
/// - A callback is accepted only from the one pool this contract is calling at that moment, in
///   the mode it was called for; the marker lives in transient storage (EIP-1153), is set only
///   inside `execute` and is cleared on first use. A flash callback must also carry exactly the
///   route `execute` was given (its keccak256 is kept in transient storage), so a pool cannot
///   change the route; a V3 payment is in the token and up to the amount this contract chose.
/// - No approvals are ever given: every payment is a direct `transfer`.
/// - A hop's input that passes through this contract is measured: a V2 flash's output, and the
///   output of any hop followed by a V3 hop. Other outputs go straight to the next V2 pair, whose
///   own balance check (`K`) refuses an input short of what it is asked to send; the last hop's
///   output is the base token, measured by the profit check.
/// - ETH is accepted only from WETH (the unwrap that pays the builder).
/// - `executeMany` runs up to MAX_ROUTES routes in one transaction, each as a call of this
///   contract's own `execute` (the only call it makes to itself, the only caller besides the
///   owner `execute` accepts): a route that reverts is undone alone, transient storage included,
///   and skipped; the whole call reverts when no route ran (docs/adr/0033-several-routes-per-block.md).
contract ArbExecutor {
    /// @notice One hop of a route.
    /// @param pool The V2 pair or V3 pool to swap on.
    /// @param tokenIn The token this hop takes (the base token for the first hop).
    /// @param kind KIND_V2 or KIND_V3.
    /// @param zeroForOne True to swap token0 for token1.
    /// @param amountOut V2: the exact output to ask the pair for (computed off-chain with the
    /// pair's fee); V3: unused (the pool's own result is used), zero by convention.
    struct Hop {
        address pool;
        address tokenIn;
        uint8 kind;
        bool zeroForOne;
        uint256 amountOut;
    }

    uint8 public constant KIND_V2 = 0;
    uint8 public constant KIND_V3 = 1;
    uint256 public constant BPS = 10_000;
    /// @notice The most routes one `executeMany` may carry.
    uint256 public constant MAX_ROUTES = 8;

    /// @dev TickMath.MIN_SQRT_RATIO + 1 and TickMath.MAX_SQRT_RATIO - 1: no price limit.
    uint160 private constant MIN_SQRT_RATIO_PLUS_ONE = 4295128740;
    uint160 private constant MAX_SQRT_RATIO_MINUS_ONE =
        1461446703485210103287273052203988822378723970341;

    /// @dev What the expected callback may do.
    uint8 private constant MODE_NONE = 0;
    uint8 private constant MODE_V2_FLASH = 1;
    uint8 private constant MODE_V3_FLASH = 2;
    uint8 private constant MODE_V3_PAY = 3;

    /// @notice The only account allowed to execute and withdraw: the deployer.
    address public immutable owner;
    /// @notice The wrapped native token; the builder is paid by unwrapping it.
    address public immutable weth;

    /// @dev The pool allowed to make the next callback; zero when none is.
    address private transient _pool;
    /// @dev Which callback that pool may make (a MODE_ constant).
    uint8 private transient _mode;
    /// @dev keccak256 of the route data a flash callback must carry back.
    bytes32 private transient _route;
    /// @dev MODE_V3_PAY: the token owed to the pool, and the most that may be paid.
    address private transient _payToken;
    uint256 private transient _payMax;
    /// @dev The flash's output token balance before the first swap, when that output comes here.
    uint256 private transient _mark;

    /// @notice The caller is not the owner.
    error NotOwner();
    /// @notice Fewer than two hops, a first hop not taking `base`, an unknown kind, or an amount
    /// too large for a V3 swap.
    error BadRoute();
    /// @notice `builderShareBps` is above 10,000.
    error BadShare();
    /// @notice A builder share was asked for with a base token other than WETH.
    error BuilderPaymentNeedsWeth();
    /// @notice A callback from anyone but the pool being called, in another mode, for a swap
    /// this contract did not start, or with other route data.
    error UnexpectedCallback();
    /// @notice A pool claimed more than this contract chose to pay, or reported or delivered no
    /// output.
    error BadDelta();
    /// @notice A pool returned from `swap` without calling back.
    error NoCallback();
    /// @notice `token.transfer` reverted, returned false, or `token` has no code.
    error TransferFailed(address token);
    /// @notice What the route left after the builder (`kept`, 0 on a loss) is under `minProfit`.
    error ProfitTooLow(uint256 kept, uint256 minProfit);
    /// @notice Sending ETH (to the builder or on a withdrawal) failed.
    error EthTransferFailed();
    /// @notice ETH sent by anyone but WETH.
    error OnlyWeth();
    /// @notice `executeMany` was given no route, more than MAX_ROUTES, or a call that is not
    /// `execute`.
    error BadBatch();
    /// @notice Every route of an `executeMany` reverted.
    error NoRouteExecuted();

    /// @dev Reverts unless the caller is the owner.
    modifier onlyOwner() {
        if (msg.sender != owner) revert NotOwner();
        _;
    }

    /// @param weth_ The wrapped native token (WETH9) of this chain.
    constructor(address weth_) {
        owner = msg.sender;
        weth = weth_;
    }

    /// @notice Accepts ETH only from WETH, when the builder's payment is unwrapped.
    receive() external payable {
        if (msg.sender != weth) revert OnlyWeth();
    }

    /// @notice Run the cyclic route `hops` on `amountIn` of `base` and keep at least `minProfit`.
    /// @dev The arguments are passed unchanged to the first pool as its callback data.
    /// @param base The token the route starts and ends with.
    /// @param amountIn What the first hop takes (borrowed from the first pool).
    /// @param minProfit The least growth of this contract's `base` balance, after the builder.
    /// @param builderShareBps The builder's share of the realized profit, in basis points, paid
    /// in ETH to block.coinbase; non-zero only when `base` is WETH.
    /// @param hops The route, at least two hops, the first taking `base`.
    function execute(
        address base,
        uint256 amountIn,
        uint256 minProfit,
        uint256 builderShareBps,
        Hop[] calldata hops
    ) external {
        if (msg.sender != owner && msg.sender != address(this)) revert NotOwner();
        if (hops.length < 2 || hops[0].tokenIn != base) revert BadRoute();
        if (builderShareBps > BPS) revert BadShare();
        if (builderShareBps != 0 && base != weth) revert BuilderPaymentNeedsWeth();
        uint256 start = IERC20Minimal(base).balanceOf(address(this));

        bytes calldata route = msg.data[4:];
        _route = keccak256(route);
        Hop calldata first = hops[0];
        _pool = first.pool;
        if (first.kind == KIND_V2 || hops[1].kind == KIND_V3) {
            _mark = IERC20Minimal(hops[1].tokenIn).balanceOf(address(this)); // output comes here
        }
        if (first.kind == KIND_V2) {
            _mode = MODE_V2_FLASH;
            (uint256 out0, uint256 out1) =
                first.zeroForOne ? (uint256(0), first.amountOut) : (first.amountOut, uint256(0));
            IUniswapV2PairMinimal(first.pool).swap(out0, out1, address(this), route);
        } else if (first.kind == KIND_V3) {
            _mode = MODE_V3_FLASH;
            IUniswapV3PoolMinimal(first.pool).swap(
                _recipient(hops[1].kind, hops[1].pool),
                first.zeroForOne,
                _int(amountIn),
                _noLimit(first.zeroForOne),
                route
            );
        } else {
            revert BadRoute();
        }
        if (_pool != address(0)) revert NoCallback();

        uint256 end = IERC20Minimal(base).balanceOf(address(this));
        uint256 profit = end > start ? end - start : 0;
        uint256 payment = profit * builderShareBps / BPS;
        if (end < start || profit - payment < minProfit) {
            revert ProfitTooLow(profit - payment, minProfit);
        }
        if (payment != 0) {
            IWETH9Minimal(weth).withdraw(payment);
            (bool paid,) = block.coinbase.call{value: payment}("");
            if (!paid) revert EthTransferFailed();
        }
    }

    /// @notice Run several routes in one transaction: each of `calls` is the calldata of an
    /// `execute` (its own minProfit and builder share), called on this contract; one that
    /// reverts is skipped, its effects undone. Reverts with NoRouteExecuted if none ran.
    /// @return executed How many routes ran.
    function executeMany(bytes[] calldata calls) external onlyOwner returns (uint256 executed) {
        uint256 n = calls.length;
        if (n == 0 || n > MAX_ROUTES) revert BadBatch();
        for (uint256 i = 0; i < n; ++i) {
            bytes calldata route = calls[i];
            if (route.length < 4 || bytes4(route[:4]) != this.execute.selector) revert BadBatch();
            (bool ok,) = address(this).call(route);
            if (ok) ++executed;
        }
        if (executed == 0) revert NoRouteExecuted();
    }

    /// @notice Uniswap V2 flash-swap callback: runs the rest of the route, repays the pair.
    function uniswapV2Call(address sender, uint256, uint256, bytes calldata data) external {
        _v2Flash(sender, data);
    }

    /// @notice The same callback under PancakeSwap's name (V2 forks that rename it).
    function pancakeCall(address sender, uint256, uint256, bytes calldata data) external {
        _v2Flash(sender, data);
    }

    /// @notice Uniswap V3 swap callback: pays the pool; for the first hop, runs the rest first.
    function uniswapV3SwapCallback(int256 amount0Delta, int256 amount1Delta, bytes calldata data)
        external
    {
        if (msg.sender != _pool) revert UnexpectedCallback();
        uint8 mode = _mode;
        _pool = address(0);
        _mode = MODE_NONE;
        // exactly one delta is positive for a real pool: what it is owed
        int256 owed = amount0Delta > amount1Delta ? amount0Delta : amount1Delta;
        if (owed <= 0) revert BadDelta();
        if (mode == MODE_V3_PAY) {
            if (uint256(owed) > _payMax) revert BadDelta();
            _transfer(_payToken, msg.sender, uint256(owed));
        } else if (mode == MODE_V3_FLASH) {
            (address base, uint256 amountIn, Hop[] memory hops) = _openRoute(data);
            if (uint256(owed) > amountIn) revert BadDelta();
            // the output came here only when the next hop is V3; else the next pair checks it
            uint256 received = hops[1].kind == KIND_V3 ? _received(hops[1].tokenIn) : 0;
            _runRest(hops, received, false);
            _transfer(base, msg.sender, uint256(owed));
        } else {
            revert UnexpectedCallback();
        }
    }

    /// @notice Send `amount` of `token` held here to `to`.
    function withdraw(address token, address to, uint256 amount) external onlyOwner {
        _transfer(token, to, amount);
    }

    /// @notice Send `amount` wei held here to `to`.
    function withdrawEth(address payable to, uint256 amount) external onlyOwner {
        (bool sent,) = to.call{value: amount}("");
        if (!sent) revert EthTransferFailed();
    }

    /// @dev The V2 flash callback: only the pair being called, only for a swap this contract
    /// started, only with the route `execute` was given.
    function _v2Flash(address sender, bytes calldata data) private {
        if (msg.sender != _pool || _mode != MODE_V2_FLASH) revert UnexpectedCallback();
        _pool = address(0);
        _mode = MODE_NONE;
        if (sender != address(this)) revert UnexpectedCallback();
        (address base, uint256 amountIn, Hop[] memory hops) = _openRoute(data);
        _runRest(hops, _received(hops[1].tokenIn), true);
        _transfer(base, msg.sender, amountIn);
    }

    /// @dev Check that `data` is the route of the running `execute` (once), and decode it.
    function _openRoute(bytes calldata data)
        private
        returns (address base, uint256 amountIn, Hop[] memory hops)
    {
        if (_route == bytes32(0) || keccak256(data) != _route) revert UnexpectedCallback();
        _route = bytes32(0);
        (base, amountIn,,, hops) = abi.decode(data, (address, uint256, uint256, uint256, Hop[]));
    }

    /// @dev What arrived of `token` since `_mark` was taken; reverts if nothing did.
    function _received(address token) private view returns (uint256 amount) {
        amount = IERC20Minimal(token).balanceOf(address(this)) - _mark;
        if (amount == 0) revert BadDelta();
    }

    /// @dev Hops 1.. of the route. `amount` of hops[1].tokenIn was measured arriving here when
    /// `held` (after a V2 flash) or when hops[1] is V3; otherwise it went to hops[1].pool, a V2
    /// pair. Each hop sends its output straight to the next V2 pair, else here; an output that
    /// comes here for a V3 hop is measured and is all that hop may take.
    function _runRest(Hop[] memory hops, uint256 amount, bool held) private {
        uint256 n = hops.length;
        for (uint256 i = 1; i < n; ++i) {
            Hop memory hop = hops[i];
            bool measure = i + 1 < n && hops[i + 1].kind == KIND_V3;
            address to = i + 1 < n ? _recipient(hops[i + 1].kind, hops[i + 1].pool) : address(this);
            if (measure) _mark = IERC20Minimal(hops[i + 1].tokenIn).balanceOf(address(this));
            if (hop.kind == KIND_V2) {
                if (i == 1 && held) _transfer(hop.tokenIn, hop.pool, amount);
                (uint256 out0, uint256 out1) =
                    hop.zeroForOne ? (uint256(0), hop.amountOut) : (hop.amountOut, uint256(0));
                IUniswapV2PairMinimal(hop.pool).swap(out0, out1, to, "");
            } else if (hop.kind == KIND_V3) {
                _pool = hop.pool;
                _mode = MODE_V3_PAY;
                _payToken = hop.tokenIn;
                _payMax = amount;
                (int256 amount0, int256 amount1) = IUniswapV3PoolMinimal(hop.pool).swap(
                    to, hop.zeroForOne, _int(amount), _noLimit(hop.zeroForOne), ""
                );
                if (_pool != address(0)) revert NoCallback();
                if ((hop.zeroForOne ? -amount1 : -amount0) <= 0) revert BadDelta();
            } else {
                revert BadRoute();
            }
            if (measure) amount = _received(hops[i + 1].tokenIn);
        }
    }

    /// @dev Where a hop sends its output: straight to the next hop's pair if that is V2 (which
    /// takes payment before `swap`), else here.
    function _recipient(uint8 nextKind, address nextPool) private view returns (address) {
        return nextKind == KIND_V2 ? nextPool : address(this);
    }

    /// @dev The price limit that never binds, for a swap in this direction.
    function _noLimit(bool zeroForOne) private pure returns (uint160) {
        return zeroForOne ? MIN_SQRT_RATIO_PLUS_ONE : MAX_SQRT_RATIO_MINUS_ONE;
    }

    /// @dev `amount` as a V3 exact-input amount.
    function _int(uint256 amount) private pure returns (int256) {
        if (amount > uint256(type(int256).max)) revert BadRoute();
        return int256(amount);
    }

    /// @dev ERC-20 transfer that accepts tokens returning nothing and rejects a false return, a
    /// revert, or an address without code.
    function _transfer(address token, address to, uint256 amount) private {
        (bool ok, bytes memory ret) =
            token.call(abi.encodeCall(IERC20Minimal.transfer, (to, amount)));
        if (!ok || (ret.length == 0 ? token.code.length == 0 : !abi.decode(ret, (bool)))) {
            revert TransferFailed(token);
        }
    }
}
