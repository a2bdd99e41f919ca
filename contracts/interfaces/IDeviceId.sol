// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

/// @title Aftermarket device NFTs and their pairing to vehicles
/// @notice A device's token id is its address: the key held in its secure element. A
/// registered manufacturer mints devices in batches; a user claims one with their signature
/// and the device's; the vehicle's owner pairs it to a vehicle with their signature and the
/// device's. A vehicle has at most one device, a device at most one vehicle, and a transfer
/// of either unpairs them.
interface IDeviceId {
    /* TYPES */

    /// @notice Why a pairing ended.
    enum UnpairReason {
        Owner,
        VehicleTransferred,
        DeviceTransferred
    }

    /// @notice Per-device pairing state, one storage slot.
    /// @param vehicleId The paired vehicle, or 0.
    /// @param pairedSince Timestamp of the pairing, or 0.
    /// @param nonce Number of pairings so far; pairing signatures commit to it.
    /// @param claimed True once a user claimed the device.
    struct Pairing {
        uint64 vehicleId;
        uint40 pairedSince;
        uint32 nonce;
        bool claimed;
    }

    /* ERRORS */

    /// @notice The device address is zero.
    error DeviceIdZeroDevice();
    /// @notice `devices` and `serialHashes` differ in length.
    error DeviceIdLengthMismatch(uint256 devices, uint256 serialHashes);
    /// @notice `device` was minted already.
    error DeviceIdAlreadyMinted(address device);
    /// @notice No device was minted at `device`.
    error DeviceIdUnknownDevice(address device);
    /// @notice `device` was claimed already.
    error DeviceIdAlreadyClaimed(address device);
    /// @notice `device` is held by `holder`, not by a manufacturer, so it cannot be claimed.
    error DeviceIdNotWithManufacturer(address device, address holder);
    /// @notice `device` has not been claimed by a user yet.
    error DeviceIdNotClaimed(address device);
    /// @notice The signatures' deadline `deadline` has passed.
    error DeviceIdExpiredSignature(uint256 deadline);
    /// @notice A signature was made by `signer`, not by `expected`.
    error DeviceIdInvalidSigner(address signer, address expected);
    /// @notice `device` is paired to `vehicleId` already.
    error DeviceIdAlreadyPaired(address device, uint256 vehicleId);
    /// @notice `device` is not paired.
    error DeviceIdNotPaired(address device);
    /// @notice The device's owner `deviceOwner` is not the vehicle's owner `vehicleOwner`.
    error DeviceIdOwnerMismatch(address deviceOwner, address vehicleOwner);
    /// @notice `caller` owns neither the device nor its vehicle.
    error DeviceIdUnauthorizedUnpair(address caller);
    /// @notice Only the VehicleId contract may call this; `caller` is not it.
    error DeviceIdOnlyVehicleId(address caller);

    /* EVENTS */

    /// @notice Manufacturer `manufacturerId` minted `device`, bound to `serialHash`.
    event DeviceMinted(address indexed device, uint32 indexed manufacturerId, bytes32 serialHash);
    /// @notice `owner` claimed `device` from its manufacturer.
    event DeviceClaimed(address indexed device, address indexed owner);
    /// @notice `device` was paired to `vehicleId`, owned by `owner`.
    event DevicePaired(address indexed device, uint256 indexed vehicleId, address indexed owner);
    /// @notice The pairing of `device` and `vehicleId` ended for `reason`.
    event DeviceUnpaired(address indexed device, uint256 indexed vehicleId, UnpairReason reason);

    /* FUNCTIONS */

    /// @notice Mints one device per address to the calling manufacturer.
    /// @dev Only a manufacturer with `CAN_MINT_DEVICES`.
    /// @param devices The devices' addresses (their secure-element keys).
    /// @param serialHashes `keccak256` of each device's serial number.
    function mintDevices(address[] calldata devices, bytes32[] calldata serialHashes) external;

    /// @notice Transfers an unclaimed device from its manufacturer to `user`, who and which
    /// both sign `ClaimDevice(device, user, deadline)`. Anyone may relay.
    /// @dev Only while a manufacturer (an active account with the device-minting capability)
    /// holds the device: an unclaimed device someone else holds (bought from a reseller, say)
    /// is theirs, and a claim reverts with `DeviceIdNotWithManufacturer`, whoever signs.
    /// @param device The device.
    /// @param user The new owner.
    /// @param deadline Last timestamp at which the signatures are valid.
    /// @param userSignature The user's 65-byte signature.
    /// @param deviceSignature The device key's 65-byte signature.
    function claim(
        address device,
        address user,
        uint256 deadline,
        bytes calldata userSignature,
        bytes calldata deviceSignature
    ) external;

    /// @notice Pairs `device` to `vehicleId`. The vehicle's owner, who must also own the
    /// device, and the device key both sign `PairDevice(vehicleId, device, nonce, deadline)`,
    /// where `nonce` is the device's pairing count. Anyone may relay.
    /// @param vehicleId The vehicle.
    /// @param device The device.
    /// @param deadline Last timestamp at which the signatures are valid.
    /// @param ownerSignature The vehicle owner's 65-byte signature.
    /// @param deviceSignature The device key's 65-byte signature.
    function pair(
        uint256 vehicleId,
        address device,
        uint256 deadline,
        bytes calldata ownerSignature,
        bytes calldata deviceSignature
    ) external;

    /// @notice Ends the pairing of `device`; the device's or the vehicle's owner may call.
    /// @param device A paired device.
    function unpair(address device) external;

    /// @notice Ends the pairing of a vehicle that changed hands.
    /// @dev Only the VehicleId contract, from its transfer hook.
    /// @param vehicleId The transferred vehicle.
    /// @param device Its device.
    function onVehicleTransferred(uint256 vehicleId, address device) external;

    /// @notice What the oracle needs to accept a device's bundles.
    /// @param device The device's address.
    /// @return deviceId The token id (the address as a number).
    /// @return vehicleId The paired vehicle, or 0.
    /// @return vehicleOwner The vehicle's owner, or zero when unpaired.
    /// @return pairedSince Timestamp of the pairing, or 0.
    function deviceInfo(address device)
        external
        view
        returns (uint256 deviceId, uint256 vehicleId, address vehicleOwner, uint40 pairedSince);

    /// @notice The pairing state of `device`.
    /// @param device The device's address.
    /// @return The pairing record.
    function pairingOf(address device) external view returns (Pairing memory);

    /// @notice The serial-number hash `device` was minted with.
    /// @param device The device's address.
    /// @return The hash, or zero for an unknown device.
    function serialHashOf(address device) external view returns (bytes32);
}
