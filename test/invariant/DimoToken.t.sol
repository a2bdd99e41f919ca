// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {DimoToken} from "../../contracts/DimoToken.sol";
import {InvariantBase} from "../base/Base.sol";

/// @notice Drives DimoToken with mints, transfers and delegations by five actors.
contract DimoTokenHandler is InvariantBase {
    DimoToken public immutable token;
    address[5] public actors;

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

    function warp(uint256 seconds_) external {
        vm.warp(block.timestamp + 1 + seconds_ % 1 days);
    }
}

/// @notice DimoToken: votes equal delegated balances; the supply stays within the cap.
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
    }

    function invariant_supplyIsTheSumOfBalancesWithinTheCap() public view {
        uint256 sum;
        for (uint256 a; a < 5; ++a) sum += token.balanceOf(handler.actors(a));
        assertEq(token.totalSupply(), sum, "supply");
        assertLe(token.totalSupply(), token.cap(), "supply over the cap");
    }
}
