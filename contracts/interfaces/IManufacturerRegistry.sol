// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

/// @title Registry of hardware manufacturers and vehicle connections
/// @notice Lists who may mint aftermarket devices and who may mint vehicles on an owner's
/// behalf. Registrars (the timelock, once governance owns the platform) add and update them.
interface IManufacturerRegistry {
    /* TYPES */

    /// @notice A registered manufacturer or connection.
    /// @param id Sequential id, from 1.
    /// @param capabilities Bit set of `CAN_MINT_DEVICES` and `CAN_MINT_VEHICLES`.
    /// @param active False once a registrar has suspended the account.
    struct Manufacturer {
        uint32 id;
        uint8 capabilities;
        bool active;
    }

    /* ERRORS */

    /// @notice `account` is registered already.
    error ManufacturerRegistryAlreadyRegistered(address account);
    /// @notice `account` was never registered.
    error ManufacturerRegistryUnknownManufacturer(address account);
    /// @notice The name is empty or longer than 64 bytes.
    error ManufacturerRegistryInvalidName();
    /// @notice `capabilities` is zero or has bits that mean nothing.
    error ManufacturerRegistryInvalidCapabilities(uint8 capabilities);
    /// @notice `account` is not an active manufacturer holding `capability`.
    error ManufacturerRegistryMissingCapability(address account, uint8 capability);

    /* EVENTS */

    /// @notice `account` was registered as manufacturer `manufacturerId`.
    event ManufacturerRegistered(
        uint32 indexed manufacturerId, address indexed account, string name, uint8 capabilities
    );
    /// @notice The capabilities or the active flag of `account` changed.
    event ManufacturerUpdated(
        uint32 indexed manufacturerId, address indexed account, uint8 capabilities, bool active
    );

    /* FUNCTIONS */

    /// @notice Registers `account` under `name` with `capabilities`.
    /// @dev Only a holder of `REGISTRAR_ROLE`.
    /// @param account The address that will mint.
    /// @param name The manufacturer's public name (1 to 64 bytes).
    /// @param capabilities Bits of `CAN_MINT_DEVICES` and `CAN_MINT_VEHICLES`.
    /// @return manufacturerId The new id.
    function register(address account, string calldata name, uint8 capabilities)
        external
        returns (uint32 manufacturerId);

    /// @notice Changes what `account` may do, or suspends it.
    /// @dev Only a holder of `REGISTRAR_ROLE`.
    /// @param account A registered address.
    /// @param capabilities The new capability bits.
    /// @param active False suspends the account.
    function update(address account, uint8 capabilities, bool active) external;

    /// @notice The record of `account` (id 0 when unregistered).
    /// @param account Any address.
    /// @return The manufacturer record.
    function manufacturerOf(address account) external view returns (Manufacturer memory);

    /// @notice The public name of manufacturer `manufacturerId`.
    /// @param manufacturerId A registered id.
    /// @return The name.
    function nameOf(uint32 manufacturerId) external view returns (string memory);

    /// @notice Reverts unless `account` is active and holds `capability`.
    /// @param account The caller to check.
    /// @param capability One capability bit.
    /// @return manufacturerId The id of `account`.
    function requireCapability(address account, uint8 capability)
        external
        view
        returns (uint32 manufacturerId);

    /// @notice Whether `account` is active and holds `capability`: `requireCapability`'s test
    /// as a bool, for callers that revert with their own error.
    /// @dev Cheaper to call than `manufacturerOf` (one word returned, no struct to decode).
    /// @param account Any address.
    /// @param capability One capability bit.
    /// @return True when `account` is registered, active and holds `capability`.
    function hasCapability(address account, uint8 capability) external view returns (bool);
}
