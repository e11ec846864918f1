// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {FakePair} from "../test/FakePair.sol";
import {TestToken} from "../test/TestToken.sol";

/// @dev The forge cheat codes these tests use.
interface Vm {
    function readFile(string calldata path) external view returns (string memory);
    function parseJsonBytes(string calldata json, string calldata key) external pure returns (bytes memory);
    function coinbase(address newCoinbase) external;
    function deal(address account, uint256 newBalance) external;
}

/// @dev ArbExecutor's route hop, as `execute` takes it.
struct Hop {
    address pool;
    address tokenIn;
    uint8 kind;
    bool zeroForOne;
    uint256 amountOut;
}

interface IArbExecutor {
    function execute(address base, uint256 amountIn, uint256 minProfit, uint256 builderShareBps, Hop[] calldata hops)
        external;
    function executeMany(bytes[] calldata calls) external returns (uint256 executed);
    function uniswapV2Call(address sender, uint256 amount0, uint256 amount1, bytes calldata data) external;
    function uniswapV3SwapCallback(int256 amount0Delta, int256 amount1Delta, bytes calldata data) external;
}

interface IERC20 {
    function balanceOf(address account) external view returns (uint256);
    function transfer(address to, uint256 value) external returns (bool);
}

interface IWETH9 {
    function deposit() external payable;
}

interface IUniswapV2Factory {
    function createPair(address tokenA, address tokenB) external returns (address pair);
}

interface IUniswapV3Factory {
    function createPool(address tokenA, address tokenB, uint24 fee) external returns (address pool);
}

interface IUniswapV3Pool {
    function initialize(uint160 sqrtPriceX96) external;
    function mint(address recipient, int24 tickLower, int24 tickUpper, uint128 amount, bytes calldata data)
        external
        returns (uint256 amount0, uint256 amount1);
    function swap(address recipient, bool zeroForOne, int256 amountSpecified, uint160 sqrtPriceLimitX96, bytes calldata data)
        external
        returns (int256 amount0, int256 amount1);
}

interface IUniswapV2Pair {
    function mint(address to) external returns (uint256 liquidity);
    function getReserves() external view returns (uint112 reserve0, uint112 reserve1, uint32 blockTimestampLast);
}

/// @title Properties of the shipped executor under random routes through real Uniswap V2 pairs,
/// real Uniswap V3 pools and fake pools (that send nothing, or claim outputs they never sent), random amounts, minimum
/// profits and builder shares:
/// - tokens the executor holds besides the base token never decrease;
/// - a trade that goes through keeps at least `minProfit` of the base token and pays the
///   coinbase exactly its share of the realized profit;
/// - a trade that fails changes no balance and pays the coinbase nothing;
/// - a callback from anyone outside a running `execute` reverts.
/// The executor is the shipped bytecode (src/arbx/execution/arb_executor.json), the pairs, pools
/// and WETH the npm Uniswap artifacts.
contract ExecutorProperties {
    Vm private constant vm = Vm(address(uint160(uint256(keccak256("hevm cheat code")))));
    address private constant COINBASE = address(0xC0FFEE);
    uint256 private constant HELD = 5_000e18;
    uint8 private constant KIND_V2 = 0;
    uint8 private constant KIND_V3 = 1;
    uint160 private constant MIN_SQRT_RATIO_PLUS_ONE = 4295128740;
    uint160 private constant MAX_SQRT_RATIO_MINUS_ONE = 1461446703485210103287273052203988822378723970341;
    int24 private constant FULL_RANGE = 887220; // the widest range at tick spacings 10 and 60

    struct Pool {
        address pool;
        address token0;
        address token1;
        bool fake;
        uint8 kind; // of a real pool
    }

    IArbExecutor private executor;
    address private weth;
    address private a;
    address private b;
    Pool[] private pools;

    function setUp() public {
        vm.deal(address(this), 20_000 ether);
        weth = _deploy("../node_modules/@uniswap/v2-periphery/build/WETH9.json", "");
        executor = IArbExecutor(_deploy("../src/arbx/execution/arb_executor.json", abi.encode(weth)));
        a = address(new TestToken("Token A", "A", 18));
        b = address(new TestToken("Token B", "B", 18));
        IWETH9(weth).deposit{value: 15_000 ether}();
        string memory factory = "../node_modules/@uniswap/v2-core/build/UniswapV2Factory.json";
        address uni = _deploy(factory, abi.encode(address(this)));
        address fork = _deploy(factory, abi.encode(address(this)));
        _pair(uni, weth, a, 1_000 ether, 2_000_000e18); // 2,000 A per WETH
        _pair(fork, weth, a, 1_000 ether, 2_100_000e18); // 2,100
        _pair(uni, weth, b, 1_000 ether, 3_000_000e18); // 3,000 B per WETH
        _pair(fork, a, b, 1_000_000e18, 1_500_000e18); // 1.5 B per A
        address v3 = _deploy(
            "../node_modules/@uniswap/v3-core/artifacts/contracts/UniswapV3Factory.sol/UniswapV3Factory.json", ""
        );
        _pool(v3, weth, a, 3000, 2_050, 1, 4e22); // 2,050 A per WETH
        _pool(v3, weth, b, 500, 3_100, 1, 5e22); // 3,100 B per WETH
        _pool(v3, a, b, 3000, 145, 100, 1e24); // 1.45 B per A
        _fake(weth, a);
        _fake(weth, b);
        _fake(a, b);
        // what the executor holds: a little WETH, and inventory of A and B
        IERC20(weth).transfer(address(executor), 1 ether);
        TestToken(a).mint(address(executor), HELD);
        TestToken(b).mint(address(executor), HELD);
        vm.coinbase(COINBASE);
    }

    /// @notice The deterministic cases the fuzzed ones depend on: real routes pay.
    function test_aProfitableRoutePaysTheOwnerAndTheBuilder() public {
        Hop[] memory hops = new Hop[](2);
        uint256 amountIn = 1 ether;
        uint256 mid = _quote(pools[1], weth, amountIn); // WETH -> A at 2,100
        hops[0] = _hop(pools[1], weth, mid, KIND_V2);
        hops[1] = _hop(pools[0], a, _quote(pools[0], a, mid), KIND_V2); // A -> WETH at 2,000
        require(_run(hops, amountIn, 1, 2_500), "a profitable V2-V2 route reverted");
        uint256 paid = COINBASE.balance;
        require(paid > 0, "the builder was not paid");
        hops[0] = _hop(pools[1], weth, _quote(pools[1], weth, amountIn), KIND_V2);
        hops[1] = _hop(pools[4], a, 0, KIND_V3); // A -> WETH at 2,050 on V3
        require(_run(hops, amountIn, 1, 2_500), "a profitable V2-V3 route reverted");
        require(COINBASE.balance > paid, "the builder was not paid");
    }

    /// @notice Random routes, real and fake pools, random amounts, minimums and shares.
    function testFuzz_heldTokensNeverLeave(uint256 seed, uint256 amountIn, uint256 minProfit, uint256 bps)
        public
    {
        amountIn = _logBound(amountIn, 1e6, 20 ether);
        Hop[] memory hops = _route(seed, amountIn, true);
        _run(hops, amountIn, _minimum(minProfit), _bound(bps, 0, 10_000));
    }

    /// @notice Routes through real pairs only, with exact or inflated outputs asked.
    function testFuzz_realRoutesKeepTheirMinimum(uint256 seed, uint256 amountIn, uint256 minProfit, uint256 bps)
        public
    {
        amountIn = _logBound(amountIn, 1e6, 50 ether);
        Hop[] memory hops = _route(seed, amountIn, false);
        _run(hops, amountIn, _minimum(minProfit), _bound(bps, 0, 10_000));
    }

    /// @notice Two random routes (fake pools among them) in one `executeMany`, both quoted on
    /// the state before it: held tokens never leave, a call that ran keeps at least one route's
    /// minimum, and one where no route ran changes nothing.
    function testFuzz_batchesKeepHeldTokens(uint256 seed, uint256 amountIn, uint256 minProfit, uint256 bps)
        public
    {
        amountIn = _logBound(amountIn, 1e6, 20 ether);
        uint256 minimum = _minimum(minProfit);
        bps = _bound(bps, 0, 10_000);
        bytes[] memory calls = new bytes[](2);
        for (uint256 k = 0; k < 2; ++k) {
            Hop[] memory hops = _route(uint256(keccak256(abi.encode(seed, k))), amountIn, true);
            calls[k] = abi.encodeCall(IArbExecutor.execute, (weth, amountIn, minimum, bps, hops));
        }
        Balances memory before = _balances();
        bool ok;
        try executor.executeMany(calls) returns (uint256 executed) {
            ok = true;
            require(executed == 1 || executed == 2, "executeMany ran no route and did not revert");
        } catch {}
        Balances memory later = _balances();
        require(later.a >= before.a, "held A decreased");
        require(later.b >= before.b, "held B decreased");
        if (!ok) {
            require(later.weth == before.weth, "a failed batch moved WETH");
            require(later.coinbase == before.coinbase, "a failed batch paid the coinbase");
            return;
        }
        require(later.weth >= before.weth + minimum, "kept less than a route's minimum");
    }

    /// @notice No callback is accepted outside a running `execute`.
    function testFuzz_callbacksFromOutsideRevert(address sender, uint256 amount, int256 d0, int256 d1, bytes calldata data)
        public
    {
        uint256 held = IERC20(a).balanceOf(address(executor));
        try executor.uniswapV2Call(sender, 0, amount, data) {
            revert("uniswapV2Call accepted a call from outside");
        } catch {}
        try executor.uniswapV3SwapCallback(d0, d1, data) {
            revert("uniswapV3SwapCallback accepted a call from outside");
        } catch {}
        require(IERC20(a).balanceOf(address(executor)) == held, "a callback moved tokens");
    }

    /// @dev The balances the properties are about.
    struct Balances {
        uint256 weth;
        uint256 a;
        uint256 b;
        uint256 coinbase;
    }

    function _balances() private view returns (Balances memory) {
        address holder = address(executor);
        return Balances(
            IERC20(weth).balanceOf(holder), IERC20(a).balanceOf(holder), IERC20(b).balanceOf(holder), COINBASE.balance
        );
    }

    /// @dev Execute and check the properties; whether the trade went through.
    function _run(Hop[] memory hops, uint256 amountIn, uint256 minProfit, uint256 bps) private returns (bool ok) {
        Balances memory before = _balances();
        try executor.execute(weth, amountIn, minProfit, bps, hops) {
            ok = true;
        } catch {}
        Balances memory later = _balances();
        require(later.a >= before.a, "held A decreased");
        require(later.b >= before.b, "held B decreased");
        uint256 paid = later.coinbase - before.coinbase;
        if (!ok) {
            require(later.weth == before.weth, "a failed trade moved WETH");
            require(later.a == before.a && later.b == before.b, "a failed trade moved a held token");
            require(paid == 0, "a failed trade paid the coinbase");
            return false;
        }
        require(later.weth >= before.weth + minProfit, "kept less than the minimum");
        uint256 profit = later.weth - before.weth + paid;
        require(paid == profit * bps / 10_000, "the coinbase was not paid its share");
    }

    /// @dev A random cycle from WETH of 2 to 4 hops; with `fakes`, any hop may be a fake pool
    /// (half of the time where one fits).
    function _route(uint256 seed, uint256 amountIn, bool fakes) private returns (Hop[] memory hops) {
        uint256 n = 2 + seed % 3;
        hops = new Hop[](n);
        address token = weth;
        uint256 amount = amountIn;
        for (uint256 i = 0; i < n; ++i) {
            uint256 r = uint256(keccak256(abi.encode(seed, i)));
            Pool memory p = _pick(token, i, n, r, fakes);
            address out = p.token0 == token ? p.token1 : p.token0;
            uint256 ask;
            uint8 kind = KIND_V2;
            if (p.fake) {
                kind = (r >> 8) % 2 == 0 ? KIND_V2 : KIND_V3;
                ask = kind == KIND_V2 ? _logBound(r >> 16, 1, 2 * HELD) : 0;
                amount = ask == 0 ? amount : ask;
            } else if (p.kind == KIND_V3) {
                kind = KIND_V3;
                amount = _quoteV3(p, token, amount);
            } else {
                ask = _quote(p, token, amount);
                if ((r >> 8) % 4 == 0) ask += ask * ((r >> 16) % 1_000) / 1_000; // asks too much
                amount = ask;
            }
            hops[i] = _hop(p, token, ask, kind);
            token = out;
        }
    }

    /// @dev A pool taking `token`: the last hop goes back to WETH, the one before it away from it.
    function _pick(address token, uint256 i, uint256 n, uint256 r, bool fakes) private view returns (Pool memory) {
        Pool[] memory fit = new Pool[](pools.length);
        uint256 count;
        bool fake = fakes && (r >> 4) % 2 == 0;
        for (uint256 k = 0; k < pools.length; ++k) {
            Pool memory p = pools[k];
            if (p.fake != fake) continue;
            if (p.token0 != token && p.token1 != token) continue;
            address out = p.token0 == token ? p.token1 : p.token0;
            if (i == n - 1 && out != weth) continue;
            if (i == n - 2 && out == weth) continue;
            fit[count++] = p;
        }
        require(count != 0, "no pool fits");
        return fit[r % count];
    }

    function _hop(Pool memory p, address tokenIn, uint256 amountOut, uint8 kind) private pure returns (Hop memory) {
        return Hop(p.pool, tokenIn, kind, p.token0 == tokenIn, amountOut);
    }

    /// @dev UniswapV2Library.getAmountOut on the pair's current reserves.
    function _quote(Pool memory p, address tokenIn, uint256 amountIn) private view returns (uint256) {
        (uint112 r0, uint112 r1,) = IUniswapV2Pair(p.pool).getReserves();
        (uint256 rIn, uint256 rOut) = p.token0 == tokenIn ? (uint256(r0), uint256(r1)) : (uint256(r1), uint256(r0));
        uint256 withFee = amountIn * 997;
        return withFee * rOut / (rIn * 1000 + withFee);
    }

    function _pair(address factory, address x, address y, uint256 amountX, uint256 amountY) private {
        address pair = IUniswapV2Factory(factory).createPair(x, y);
        _fund(x, pair, amountX);
        _fund(y, pair, amountY);
        IUniswapV2Pair(pair).mint(address(this));
        (address t0, address t1) = x < y ? (x, y) : (y, x);
        pools.push(Pool(pair, t0, t1, false, KIND_V2));
    }

    /// @dev A V3 pool at `num / den` y per x (whole tokens, all of 18 decimals), full range.
    function _pool(address factory, address x, address y, uint24 fee, uint256 num, uint256 den, uint128 liquidity)
        private
    {
        address pool = IUniswapV3Factory(factory).createPool(x, y, fee);
        (address t0, address t1) = x < y ? (x, y) : (y, x);
        if (t0 != x) (num, den) = (den, num); // the price of token0 in token1
        IUniswapV3Pool(pool).initialize(uint160(_sqrt((num << 192) / den)));
        IUniswapV3Pool(pool).mint(address(this), -FULL_RANGE, FULL_RANGE, liquidity, abi.encode(t0, t1));
        pools.push(Pool(pool, t0, t1, false, KIND_V3));
    }

    function _fake(address x, address y) private {
        (address t0, address t1) = x < y ? (x, y) : (y, x);
        pools.push(Pool(address(new FakePair(t0, t1)), t0, t1, true, KIND_V2));
    }

    /// @notice Pays for the liquidity minted in setUp.
    function uniswapV3MintCallback(uint256 owed0, uint256 owed1, bytes calldata data) external {
        (address t0, address t1) = abi.decode(data, (address, address));
        _fund(t0, msg.sender, owed0);
        _fund(t1, msg.sender, owed1);
    }

    /// @notice A quote: the swap reverts with its output (0 when an amount too small gives
    /// none: then neither delta is negative), so nothing is paid or changed.
    function uniswapV3SwapCallback(int256 amount0, int256 amount1, bytes calldata) external pure {
        int256 given = amount0 < 0 ? amount0 : amount1 < 0 ? amount1 : int256(0);
        uint256 out = uint256(-given);
        assembly {
            mstore(0, out)
            revert(0, 32)
        }
    }

    /// @dev What a real V3 pool gives for `amountIn` of `tokenIn` now (0 if it cannot swap it).
    function _quoteV3(Pool memory p, address tokenIn, uint256 amountIn) private returns (uint256) {
        bool zeroForOne = p.token0 == tokenIn;
        if (amountIn == 0 || amountIn > uint256(type(int256).max)) return 0;
        uint160 limit = zeroForOne ? MIN_SQRT_RATIO_PLUS_ONE : MAX_SQRT_RATIO_MINUS_ONE;
        try IUniswapV3Pool(p.pool).swap(address(this), zeroForOne, int256(amountIn), limit, "") {
            revert("a quote went through");
        } catch (bytes memory reason) {
            return reason.length == 32 ? abi.decode(reason, (uint256)) : 0;
        }
    }

    function _sqrt(uint256 x) private pure returns (uint256 y) {
        if (x == 0) return 0;
        y = x;
        uint256 z = (x >> 1) + 1;
        while (z < y) {
            y = z;
            z = (x / z + z) >> 1;
        }
    }

    function _fund(address token, address to, uint256 amount) private {
        if (token == weth) IERC20(weth).transfer(to, amount);
        else TestToken(token).mint(to, amount);
    }

    /// @dev Deploy the creation code of an artifact (its "bytecode") with constructor `args`.
    function _deploy(string memory artifact, bytes memory args) private returns (address deployed) {
        bytes memory code = bytes.concat(vm.parseJsonBytes(vm.readFile(artifact), ".bytecode"), args);
        assembly {
            deployed := create(0, add(code, 32), mload(code))
        }
        require(deployed != address(0), "deployment failed");
    }

    function _bound(uint256 x, uint256 lo, uint256 hi) private pure returns (uint256) {
        return lo + x % (hi - lo + 1);
    }

    /// @dev A least profit: none half of the time, else up to 1 WETH over its orders of magnitude.
    function _minimum(uint256 x) private pure returns (uint256) {
        return x % 2 == 0 ? 0 : _logBound(x >> 1, 1, 1 ether);
    }

    /// @dev A value in [lo, hi] spread over its orders of magnitude (as many small as large).
    function _logBound(uint256 x, uint256 lo, uint256 hi) private pure returns (uint256) {
        uint256 bits = 0;
        while ((hi - lo) >> bits != 0) ++bits;
        uint256 top = uint256(1) << (x % (bits + 1));
        return lo + ((x >> 8) % top) % (hi - lo + 1);
    }

    receive() external payable {}
}
