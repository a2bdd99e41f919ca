// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {DimoToken} from "../../contracts/DimoToken.sol";
import {InvariantBase} from "../base/Base.sol";

/// @notice Drives DimoToken with mints, transfers and delegations by five actors, and the
/// handler's three sub-accounts: funded by it, spent by it to the actors, sent gifts by the
/// actors (handed to the handler at funding; refused once funded). Ghosts count what each
/// sub-account was funded with and spent, and the transfers that entered a funded one.
contract DimoTokenHandler is InvariantBase {
    uint256 public constant SUBACCOUNTS = 3;
    DimoToken public immutable token;
    address[5] public actors;
    mapping(uint256 id => uint256 amount) public funded;
    mapping(uint256 id => uint256 amount) public spent;
    uint256 public intoFunded;

    constructor(DimoToken token_) {
        token = token_;
        for (uint256 i; i < 5; ++i) actors[i] = address(uint160(0xA000 + i));
    }

    function mint(uint256 to, uint256 amount) external {
        uint256 room = token.cap() - token.totalSupply();
        try token.mint(actors[to % 5], amount % (room / 4 + 1)) {} catch {}
    }

    /// @dev Tries to mint past the cap: the mint must revert.
    function mintPastCap(uint256 to, uint256 extra) external {
        uint256 room = token.cap() - token.totalSupply();
        try token.mint(actors[to % 5], room + 1 + extra % 10 ** 24) {} catch {}
    }

    function transfer(uint256 from, uint256 to, uint256 amount) external {
        address sender = actors[from % 5];
        amount = amount % (token.balanceOf(sender) + 1);
        vm.prank(sender);
        token.transfer(actors[to % 5], amount);
    }

    function delegate(uint256 from, uint256 to) external {
        vm.prank(actors[from % 5]);
        // to % 6 == 5: delegate to nobody.
        token.delegate(to % 6 == 5 ? address(0) : actors[to % 6]);
    }

    function fundSubaccount(uint256 id, uint256 amount) external {
        id %= SUBACCOUNTS;
        uint256 room = token.cap() - token.totalSupply();
        amount = 1 + amount % (room / 4 + 1);
        try token.mintToSubaccount(id, amount) {
            funded[id] = amount;
        } catch {}
    }

    function spendSubaccount(uint256 id, uint256 to, uint256 amount) external {
        id %= SUBACCOUNTS;
        address account = token.subaccount(address(this), id);
        amount %= token.balanceOf(account) + 1;
        token.transferFromSubaccount(id, actors[to % 5], amount);
        // Before funding the holder spends gifts, which funding would have handed it anyway.
        if (token.isFundedSubaccount(account)) spent[id] += amount;
    }

    /// @dev An actor sends to a sub-account: a gift before funding, a revert after.
    function giftSubaccount(uint256 from, uint256 id, uint256 amount) external {
        address sender = actors[from % 5];
        address account = token.subaccount(address(this), id % SUBACCOUNTS);
        amount %= token.balanceOf(sender) + 1;
        bool wasFunded = token.isFundedSubaccount(account);
        vm.prank(sender);
        try token.transfer(account, amount) {
            if (wasFunded) intoFunded += 1;
        } catch {}
    }

    function warp(uint256 seconds_) external {
        vm.warp(block.timestamp + 1 + seconds_ % 1 days);
    }
}

/// @notice DimoToken: votes equal delegated balances (a sub-account delegates nothing, so its
/// balance holds no votes); the supply stays within the cap; a funded sub-account holds what it
/// was funded with less what its holder spent, and nothing else ever enters it.
contract DimoTokenInvariants is InvariantBase {
    DimoToken internal token;
    DimoTokenHandler internal handler;

    function setUp() public {
        token = new DimoToken(address(this));
        handler = new DimoTokenHandler(token);
        token.grantRole(token.MINTER_ROLE(), address(handler));
        targetContract(address(handler));
    }

    function invariant_votesEqualDelegatedBalances() public view {
        for (uint256 d; d < 5; ++d) {
            address delegatee = handler.actors(d);
            uint256 delegated;
            for (uint256 a; a < 5; ++a) {
                address account = handler.actors(a);
                if (token.delegates(account) == delegatee) delegated += token.balanceOf(account);
            }
            assertEq(token.getVotes(delegatee), delegated, "votes of an actor");
        }
        for (uint256 id; id < handler.SUBACCOUNTS(); ++id) {
            address account = token.subaccount(address(handler), id);
            assertTrue(token.delegates(account) == address(0), "a sub-account delegated");
            assertEq(token.getVotes(account), 0, "a sub-account votes");
        }
    }

    function invariant_supplyIsTheSumOfBalancesWithinTheCap() public view {
        uint256 sum = token.balanceOf(address(handler));
        for (uint256 a; a < 5; ++a) sum += token.balanceOf(handler.actors(a));
        for (uint256 id; id < handler.SUBACCOUNTS(); ++id) {
            sum += token.balanceOf(token.subaccount(address(handler), id));
        }
        assertEq(token.totalSupply(), sum, "supply");
        assertLe(token.totalSupply(), token.cap(), "supply over the cap");
    }

    function invariant_aFundedSubaccountHoldsItsFundingLessItsSpending() public view {
        for (uint256 id; id < handler.SUBACCOUNTS(); ++id) {
            address account = token.subaccount(address(handler), id);
            if (!token.isFundedSubaccount(account)) continue;
            assertEq(
                token.balanceOf(account), handler.funded(id) - handler.spent(id), "sub-account"
            );
        }
        assertEq(handler.intoFunded(), 0, "a transfer entered a funded sub-account");
    }
}
