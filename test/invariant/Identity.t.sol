// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {IDeviceId} from "../../contracts/interfaces/IDeviceId.sol";
import {InvariantBase} from "../base/Base.sol";
import {Platform, PlatformHandler} from "../base/Platform.sol";

/// @notice Drives identity and rights: owners pair and unpair devices, sell vehicles and
/// devices to each other, grant privileges and opt vehicles in to the market; time passes.
/// Ghosts record who made each grant and opt-in, and in which transfer epoch.
contract IdentityHandler is PlatformHandler {
    address[2] public grantees = [address(0x6A1), address(0x6A2)];
    mapping(uint256 vehicleId => mapping(address grantee => uint32 epoch)) public grantEpoch;
    mapping(uint256 vehicleId => mapping(uint256 productId => address owner)) public optInOwner;

    constructor(Platform platform_) PlatformHandler(platform_) {
    }

    function pair(uint256 v, uint256 d) external {
        platform.pair(v % 6 + 1, d);
    }

    function unpair(uint256 d, bool byVehicleOwner) external {
        address device = platform.deviceAddress(d);
        IDeviceId.Pairing memory p = devices.pairingOf(device);
        address caller = byVehicleOwner && p.vehicleId != 0
            ? vehicles.ownerOf(p.vehicleId)
            : devices.ownerOf(uint256(uint160(device)));
        vm.prank(caller);
        try devices.unpair(device) {} catch {}
    }

    function sellVehicle(uint256 v, uint256 to) external {
        uint256 vehicleId = v % 6 + 1;
        address owner = vehicles.ownerOf(vehicleId);
        address buyer = platform.ownerAddress(to);
        vm.prank(owner);
        vehicles.transferFrom(owner, buyer, vehicleId);
    }

    function sellDevice(uint256 d, uint256 to) external {
        uint256 id = uint256(uint160(platform.deviceAddress(d)));
        address owner = devices.ownerOf(id);
        address buyer = platform.ownerAddress(to);
        vm.prank(owner);
        devices.transferFrom(owner, buyer, id);
    }

    function grant(uint256 v, uint256 g, uint256 scopes) external {
        uint256 vehicleId = v % 6 + 1;
        (address owner, uint32 epoch) = vehicles.ownerAndEpochOf(vehicleId);
        address grantee = grantees[g % 2];
        vm.prank(owner);
        rights.grant(
            vehicleId, grantee, scopes % 255 + 1, uint64(block.timestamp + 30 days), hex"01"
        );
        grantEpoch[vehicleId][grantee] = epoch;
    }

    function optIn(uint256 v, uint256 p) external {
        uint256 vehicleId = v % 6 + 1;
        uint256 productId = p % 2 + 1;
        address owner = vehicles.ownerOf(vehicleId);
        vm.prank(owner);
        try market.optIn(vehicleId, productId) {
            optInOwner[vehicleId][productId] = owner;
        } catch {}
    }

    function warp(uint256 seconds_) external {
        vm.warp(block.timestamp + 1 + seconds_ % 10 days);
    }
}

/// @notice DeviceId / VehicleId / VehicleRights: a device is paired to at most one vehicle and
/// back, to a vehicle of its own owner; a transfer clears pairing, grants and opt-ins.
contract IdentityInvariants is InvariantBase {
    Platform internal platform;
    IdentityHandler internal handler;

    function setUp() public {
        vm.warp(1_700_000_000);
        platform = new Platform();
        handler = new IdentityHandler(platform);
        targetContract(address(handler));
    }

    function invariant_pairingIsOneToOneBothWays() public view {
        for (uint256 v = 1; v <= 6; ++v) {
            address device = platform.vehicles().deviceOf(v);
            if (device != address(0)) {
                assertEq(platform.devices().pairingOf(device).vehicleId, v, "device's vehicle");
            }
        }
        for (uint256 d; d < 6; ++d) {
            address device = platform.deviceAddress(d);
            uint256 v = platform.devices().pairingOf(device).vehicleId;
            if (v != 0) {
                assertTrue(platform.vehicles().deviceOf(v) == device, "vehicle's device");
                assertTrue(
                    platform.devices().ownerOf(uint256(uint160(device)))
                        == platform.vehicles().ownerOf(v),
                    "paired across owners"
                );
            }
        }
    }

    function invariant_noLiveGrantSurvivesItsVehiclesTransfer() public view {
        for (uint256 v = 1; v <= 6; ++v) {
            (, uint32 epoch) = platform.vehicles().ownerAndEpochOf(v);
            for (uint256 g; g < 2; ++g) {
                address grantee = handler.grantees(g);
                (uint256 scopes,) = platform.rights().privilegesOf(v, grantee);
                if (scopes != 0) {
                    assertEq(handler.grantEpoch(v, grantee), epoch, "grant from an older epoch");
                }
            }
        }
    }

    function invariant_everyOptInIsTheCurrentOwners() public view {
        for (uint256 v = 1; v <= 6; ++v) {
            address owner = platform.vehicles().ownerOf(v);
            for (uint256 p = 1; p <= 2; ++p) {
                if (platform.market().positionOf(v, p).optedIn) {
                    assertTrue(handler.optInOwner(v, p) == owner, "an opt-in outlived a sale");
                }
            }
        }
    }
}
