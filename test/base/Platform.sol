// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {DataMarket} from "../../contracts/DataMarket.sol";
import {DeviceId} from "../../contracts/DeviceId.sol";
import {DimoToken} from "../../contracts/DimoToken.sol";
import {ManufacturerRegistry} from "../../contracts/ManufacturerRegistry.sol";
import {Parameters} from "../../contracts/Parameters.sol";
import {VehicleId} from "../../contracts/VehicleId.sol";
import {VehicleRights} from "../../contracts/VehicleRights.sol";
import {IDeviceId} from "../../contracts/interfaces/IDeviceId.sol";
import {ParameterKeys} from "../../contracts/interfaces/IParameters.sol";
import {InvariantBase, Vm} from "./Base.sol";

/// @notice The identity and market contracts wired as `scripts/deploy.py` wires them, with
/// three owners holding six vehicles and six claimed devices; the deploying contract is the
/// admin and the manufacturer.
contract Platform {
    Vm internal constant vm = Vm(address(uint160(uint256(keccak256("hevm cheat code")))));
    uint256 internal constant OWNERS = 3;
    uint256 internal constant VEHICLES = 6;
    uint256 internal constant DEVICES = 6;

    ManufacturerRegistry public registry;
    DimoToken public token;
    VehicleId public vehicles;
    DeviceId public devices;
    VehicleRights public rights;
    Parameters public parameters;
    DataMarket public market;
    address public treasury = address(0x7EA5);
    uint256[OWNERS] public ownerKeys = [uint256(0x0A1), 0x0A2, 0x0A3];
    uint256[DEVICES] public deviceKeys = [uint256(0xD1), 0xD2, 0xD3, 0xD4, 0xD5, 0xD6];

    constructor() {
        registry = new ManufacturerRegistry(address(this));
        registry.register(address(this), "Acme", 1);
        token = new DimoToken(address(this));
        token.grantRole(token.MINTER_ROLE(), address(this));
        vehicles = new VehicleId(address(this), registry);
        devices = new DeviceId(registry, vehicles);
        vehicles.setDeviceRegistry(address(devices));
        rights = new VehicleRights(vehicles);
        parameters = new Parameters(address(this));
        parameters.setUint(ParameterKeys.PROTOCOL_FEE_BPS, 250);
        market = new DataMarket(address(this), token, vehicles, parameters, treasury);
        market.grantRole(market.CURATOR_ROLE(), address(this));
        vehicles.setDataMarket(address(market));
        market.listProduct(3, 1000 ether + 7, 30 days, hex"01");
        market.listProduct(1, 3 ether + 1, 7 days, hex"02");

        address[] memory keys = new address[](DEVICES);
        bytes32[] memory serials = new bytes32[](DEVICES);
        for (uint256 i; i < DEVICES; ++i) {
            keys[i] = vm.addr(deviceKeys[i]);
            serials[i] = keccak256(abi.encode(i));
        }
        devices.mintDevices(keys, serials);
        for (uint256 i; i < VEHICLES; ++i) {
            address owner = ownerOf(i);
            vm.prank(owner);
            vehicles.mint("Hyundai", "Kona", 2020, keccak256(abi.encode("VIN", i)));
            bytes32 digest = _digest(
                address(devices),
                keccak256(abi.encode(devices.CLAIM_TYPEHASH(), keys[i], owner, type(uint64).max))
            );
            devices.claim(
                keys[i],
                owner,
                type(uint64).max,
                _sign(ownerKeys[i % OWNERS], digest),
                _sign(deviceKeys[i], digest)
            );
        }
    }

    /// @notice Lets `minter` mint DIMO (a handler funding its buyers).
    function allowMinter(address minter) external {
        token.grantRole(token.MINTER_ROLE(), minter);
    }

    /// @notice The first owner of vehicle index `i` (vehicle id `i + 1`).
    function ownerOf(uint256 i) public view returns (address) {
        return vm.addr(ownerKeys[i % OWNERS]);
    }

    function ownerAddress(uint256 i) public view returns (address) {
        return vm.addr(ownerKeys[i % OWNERS]);
    }

    function keyOf(address owner) public view returns (uint256) {
        for (uint256 i; i < OWNERS; ++i) if (vm.addr(ownerKeys[i]) == owner) return ownerKeys[i];
        return 0;
    }

    function deviceAddress(uint256 i) public view returns (address) {
        return vm.addr(deviceKeys[i % DEVICES]);
    }

    /// @notice Pairs device index `d` to vehicle id `vehicleId` with both signatures; returns
    /// whether it worked.
    function pair(uint256 vehicleId, uint256 d) public returns (bool) {
        address device = deviceAddress(d);
        address owner = vehicles.ownerOf(vehicleId);
        IDeviceId.Pairing memory p = devices.pairingOf(device);
        bytes32 digest = _digest(
            address(devices),
            keccak256(
                abi.encode(devices.PAIR_TYPEHASH(), vehicleId, device, p.nonce, type(uint64).max)
            )
        );
        try devices.pair(
            vehicleId,
            device,
            type(uint64).max,
            _sign(keyOf(owner), digest),
            _sign(deviceKeys[d % DEVICES], digest)
        ) {
            return true;
        } catch {
            return false;
        }
    }

    function _digest(address verifier, bytes32 structHash) internal view returns (bytes32) {
        (bool ok, bytes memory ret) = verifier.staticcall(abi.encodeWithSignature("DOMAIN_SEPARATOR()"));
        require(ok);
        return keccak256(abi.encodePacked("\x19\x01", abi.decode(ret, (bytes32)), structHash));
    }

    function _sign(uint256 key, bytes32 digest) internal pure returns (bytes memory) {
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(key, digest);
        return abi.encodePacked(r, s, v);
    }
}

/// @notice A handler over a `Platform`, with its contracts cached: `vm.prank` applies to the
/// next call, which must not be a getter of the platform.
abstract contract PlatformHandler is InvariantBase {
    Platform public immutable platform;
    DataMarket internal immutable market;
    VehicleId internal immutable vehicles;
    DeviceId internal immutable devices;
    DimoToken internal immutable token;
    VehicleRights internal immutable rights;

    constructor(Platform platform_) {
        platform = platform_;
        (market, vehicles, devices) = (platform_.market(), platform_.vehicles(), platform_.devices());
        (token, rights) = (platform_.token(), platform_.rights());
    }
}
