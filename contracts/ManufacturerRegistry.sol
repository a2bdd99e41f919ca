// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {IManufacturerRegistry} from "./interfaces/IManufacturerRegistry.sol";

/// @title ManufacturerRegistry
/// @notice Who may mint devices, and who may mint vehicles for their owners.
contract ManufacturerRegistry is AccessControl, IManufacturerRegistry {
    /// @notice Role that registers and updates manufacturers.
    bytes32 public constant REGISTRAR_ROLE = keccak256("REGISTRAR_ROLE");
    /// @notice May mint aftermarket devices (`DeviceId.mintDevices`).
    uint8 public constant CAN_MINT_DEVICES = 1;
    /// @notice May mint vehicles with the owner's consent (`VehicleId.mintFor`).
    uint8 public constant CAN_MINT_VEHICLES = 2;
    uint8 private constant _ALL_CAPABILITIES = CAN_MINT_DEVICES | CAN_MINT_VEHICLES;

    /* STORAGE */

    mapping(address account => Manufacturer) private _manufacturers;
    mapping(uint32 manufacturerId => string) private _names;
    uint32 private _lastId;

    /// @param admin Holder of the admin and registrar roles (the timelock on a live network).
    constructor(address admin) {
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
        _grantRole(REGISTRAR_ROLE, admin);
    }

    /// @inheritdoc IManufacturerRegistry
    function register(address account, string calldata name, uint8 capabilities)
        external
        onlyRole(REGISTRAR_ROLE)
        returns (uint32 manufacturerId)
    {
        if (_manufacturers[account].id != 0) revert ManufacturerRegistryAlreadyRegistered(account);
        if (bytes(name).length == 0 || bytes(name).length > 64) {
            revert ManufacturerRegistryInvalidName();
        }
        _checkCapabilities(capabilities);
        manufacturerId = ++_lastId;
        _manufacturers[account] = Manufacturer(manufacturerId, capabilities, true);
        _names[manufacturerId] = name;
        emit ManufacturerRegistered(manufacturerId, account, name, capabilities);
    }

    /// @inheritdoc IManufacturerRegistry
    function update(address account, uint8 capabilities, bool active)
        external
        onlyRole(REGISTRAR_ROLE)
    {
        Manufacturer storage m = _manufacturers[account];
        if (m.id == 0) revert ManufacturerRegistryUnknownManufacturer(account);
        _checkCapabilities(capabilities);
        m.capabilities = capabilities;
        m.active = active;
        emit ManufacturerUpdated(m.id, account, capabilities, active);
    }

    /// @inheritdoc IManufacturerRegistry
    function manufacturerOf(address account) external view returns (Manufacturer memory) {
        return _manufacturers[account];
    }

    /// @inheritdoc IManufacturerRegistry
    function nameOf(uint32 manufacturerId) external view returns (string memory) {
        return _names[manufacturerId];
    }

    /// @inheritdoc IManufacturerRegistry
    function requireCapability(address account, uint8 capability)
        external
        view
        returns (uint32 manufacturerId)
    {
        Manufacturer memory m = _manufacturers[account];
        if (!_holds(m, capability)) {
            revert ManufacturerRegistryMissingCapability(account, capability);
        }
        return m.id;
    }

    /// @inheritdoc IManufacturerRegistry
    function hasCapability(address account, uint8 capability) external view returns (bool) {
        return _holds(_manufacturers[account], capability);
    }

    function _holds(Manufacturer memory m, uint8 capability) private pure returns (bool) {
        return m.active && m.capabilities & capability == capability;
    }

    function _checkCapabilities(uint8 capabilities) private pure {
        if (capabilities == 0 || capabilities & ~_ALL_CAPABILITIES != 0) {
            revert ManufacturerRegistryInvalidCapabilities(capabilities);
        }
    }
}
