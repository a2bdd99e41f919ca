// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {IDataMarket} from "../../contracts/interfaces/IDataMarket.sol";
import {InvariantBase} from "../base/Base.sol";
import {Platform, PlatformHandler} from "../base/Platform.sol";

/// @notice Drives the market: three owners opt six vehicles in and out of two products, pair
/// and unpair devices, sell vehicles to each other and claim; two buyers buy licences; time
/// passes. Around every call it checks that no position that was not earning gained revenue.
contract DataMarketHandler is PlatformHandler {
    address[2] public buyers = [address(0xB0B1), address(0xB0B2)];
    /// @dev Ghost: a position not earning (not opted in with a paired device) gained revenue.
    bool public earnedWhileNotEarning;

    constructor(Platform platform_) PlatformHandler(platform_) {
        for (uint256 i; i < 2; ++i) {
            vm.prank(buyers[i]);
            token.approve(address(market), type(uint256).max);
        }
    }

    modifier checked() {
        uint256[12] memory before;
        bool[12] memory wasEarning;
        for (uint256 i; i < 12; ++i) {
            (uint256 v, uint256 p) = (i / 2 + 1, i % 2 + 1);
            wasEarning[i] = market.positionOf(v, p).earning;
            before[i] = market.claimable(v, p);
        }
        _;
        for (uint256 i; i < 12; ++i) {
            (uint256 v, uint256 p) = (i / 2 + 1, i % 2 + 1);
            if (!wasEarning[i] && market.claimable(v, p) > before[i]) {
                earnedWhileNotEarning = true;
            }
        }
    }

    function optIn(uint256 v, uint256 p) external checked {
        uint256 vehicleId = v % 6 + 1;
        vm.prank(vehicles.ownerOf(vehicleId));
        try market.optIn(vehicleId, p % 2 + 1) {} catch {}
    }

    function optOut(uint256 v, uint256 p) external checked {
        uint256 vehicleId = v % 6 + 1;
        vm.prank(vehicles.ownerOf(vehicleId));
        try market.optOut(vehicleId, p % 2 + 1) {} catch {}
    }

    function buy(uint256 b, uint256 p, uint256 periods) external checked {
        address buyer = buyers[b % 2];
        token.mint(buyer, 10_000 ether);
        vm.prank(buyer);
        try market.buy(p % 2 + 1, uint32(periods % 3 + 1)) {} catch {}
    }

    function claim(uint256 v) external checked {
        uint256 vehicleId = v % 6 + 1;
        uint256[] memory products = new uint256[](2);
        (products[0], products[1]) = (1, 2);
        vm.prank(vehicles.ownerOf(vehicleId));
        try market.claim(vehicleId, products) {} catch {}
    }

    function pair(uint256 v, uint256 d) external checked {
        platform.pair(v % 6 + 1, d);
    }

    function unpair(uint256 d) external checked {
        address device = platform.deviceAddress(d);
        vm.prank(devices.ownerOf(uint256(uint160(device))));
        try devices.unpair(device) {} catch {}
    }

    function sellVehicle(uint256 v, uint256 to) external checked {
        uint256 vehicleId = v % 6 + 1;
        address owner = vehicles.ownerOf(vehicleId);
        address buyer = platform.ownerAddress(to);
        vm.prank(owner);
        vehicles.transferFrom(owner, buyer, vehicleId);
    }

    function sellDevice(uint256 d, uint256 to) external checked {
        uint256 id = uint256(uint160(platform.deviceAddress(d)));
        address owner = devices.ownerOf(id);
        address buyer = platform.ownerAddress(to);
        vm.prank(owner);
        devices.transferFrom(owner, buyer, id);
    }

    function withdrawFees() external checked {
        vm.prank(platform.treasury());
        try market.withdrawFees() {} catch {}
    }

    function warp(uint256 seconds_) external checked {
        vm.warp(block.timestamp + 1 + seconds_ % 20 days);
    }
}

/// @notice DataMarket: its balance is exactly what vehicles can claim, the treasury's fees and
/// the stream not yet released; only opted-in vehicles with a paired device earn.
contract DataMarketInvariants is InvariantBase {
    Platform internal platform;
    DataMarketHandler internal handler;

    function setUp() public {
        vm.warp(1_700_000_000);
        platform = new Platform();
        handler = new DataMarketHandler(platform);
        platform.allowMinter(address(handler));
        targetContract(address(handler));
    }

    function invariant_balanceIsClaimablePlusFeesPlusTheStream() public view {
        uint256 held;
        for (uint256 v = 1; v <= 6; ++v) {
            for (uint256 p = 1; p <= 2; ++p) held += platform.market().claimable(v, p);
        }
        (, uint256 fees) = platform.market().treasury();
        held += fees + platform.market().undistributed(1) + platform.market().undistributed(2);
        assertEq(platform.token().balanceOf(address(platform.market())), held, "market balance");
    }

    function invariant_onlyOptedInPairedVehiclesEarn() public view {
        for (uint256 p = 1; p <= 2; ++p) {
            uint256 optedIn;
            uint256 earning;
            for (uint256 v = 1; v <= 6; ++v) {
                IDataMarket.Position memory pos = platform.market().positionOf(v, p);
                if (pos.optedIn) ++optedIn;
                if (pos.earning) {
                    ++earning;
                    assertTrue(pos.optedIn, "earning without an opt-in");
                    assertTrue(
                        platform.vehicles().deviceOf(v) != address(0), "earning without a device"
                    );
                }
            }
            IDataMarket.Product memory product = platform.market().productOf(p);
            assertEq(product.optedIn, optedIn, "opted-in count");
            assertEq(product.earning, earning, "earning count");
        }
        assertTrue(!handler.earnedWhileNotEarning(), "revenue for time not earning");
    }
}
