// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {ERC721} from "@openzeppelin/contracts/token/ERC721/ERC721.sol";
import {SafeCast} from "@openzeppelin/contracts/utils/math/SafeCast.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {IDeviceId} from "./interfaces/IDeviceId.sol";
import {IManufacturerRegistry} from "./interfaces/IManufacturerRegistry.sol";
import {IVehicleId} from "./interfaces/IVehicleId.sol";

/// @title DeviceId
/// @notice Aftermarket device NFTs, claimed and paired with signatures of their keys.
contract DeviceId is ERC721, EIP712, IDeviceId {
    /// @notice EIP-712 type signed by the user and the device to claim it.
    bytes32 public constant CLAIM_TYPEHASH =
        keccak256("ClaimDevice(address device,address user,uint256 deadline)");
    /// @notice EIP-712 type signed by the vehicle's owner and the device to pair them.
    bytes32 public constant PAIR_TYPEHASH =
        keccak256("PairDevice(uint256 vehicleId,address device,uint256 nonce,uint256 deadline)");
    uint8 private constant _CAN_MINT_DEVICES = 1;

    /* STORAGE */

    IManufacturerRegistry private immutable _registry;
    IVehicleId private immutable _vehicles;
    mapping(address device => bytes32 serialHash) private _serialHashes;
    mapping(address device => Pairing) private _pairings;

    /// @param registry The manufacturer registry.
    /// @param vehicles The VehicleId contract.
    constructor(IManufacturerRegistry registry, IVehicleId vehicles)
        ERC721("DIMO Aftermarket Device ID", "DIMODEV")
        EIP712("DIMO", "1")
    {
        _registry = registry;
        _vehicles = vehicles;
    }

    /// @inheritdoc IDeviceId
    function mintDevices(address[] calldata devices, bytes32[] calldata serialHashes) external {
        uint32 manufacturerId = _registry.requireCapability(msg.sender, _CAN_MINT_DEVICES);
        if (devices.length != serialHashes.length) {
            revert DeviceIdLengthMismatch(devices.length, serialHashes.length);
        }
        for (uint256 i; i < devices.length; ++i) {
            address device = devices[i];
            if (device == address(0)) revert DeviceIdZeroDevice();
            if (_ownerOf(_idOf(device)) != address(0)) revert DeviceIdAlreadyMinted(device);
            _serialHashes[device] = serialHashes[i];
            _mint(msg.sender, _idOf(device));
            emit DeviceMinted(device, manufacturerId, serialHashes[i]);
        }
    }

    /// @inheritdoc IDeviceId
    function claim(
        address device,
        address user,
        uint256 deadline,
        bytes calldata userSignature,
        bytes calldata deviceSignature
    ) external {
        if (block.timestamp > deadline) revert DeviceIdExpiredSignature(deadline);
        Pairing storage p = _pairings[device];
        if (p.claimed) revert DeviceIdAlreadyClaimed(device);
        p.claimed = true;
        // The transfer returns the holder, so the owner slot is read once; every check below
        // reverts it with the rest of the claim. It calls out nowhere: an unclaimed device is
        // never paired, and `_update` does not call the receiver.
        address holder = _update(user, _idOf(device), address(0));
        if (holder == address(0)) revert DeviceIdUnknownDevice(device);
        if (!_registry.hasCapability(holder, _CAN_MINT_DEVICES)) {
            revert DeviceIdNotWithManufacturer(device, holder);
        }
        bytes32 digest =
            _hashTypedDataV4(keccak256(abi.encode(CLAIM_TYPEHASH, device, user, deadline)));
        _checkSigner(digest, userSignature, user);
        _checkSigner(digest, deviceSignature, device);
        emit DeviceClaimed(device, user);
    }

    /// @inheritdoc IDeviceId
    function pair(
        uint256 vehicleId,
        address device,
        uint256 deadline,
        bytes calldata ownerSignature,
        bytes calldata deviceSignature
    ) external {
        if (block.timestamp > deadline) revert DeviceIdExpiredSignature(deadline);
        Pairing memory p = _pairings[device];
        if (!p.claimed) revert DeviceIdNotClaimed(device);
        if (p.vehicleId != 0) revert DeviceIdAlreadyPaired(device, p.vehicleId);
        address vehicleOwner = _vehicles.attachDevice(vehicleId, device);
        address deviceOwner = _ownerOf(_idOf(device));
        if (deviceOwner != vehicleOwner) revert DeviceIdOwnerMismatch(deviceOwner, vehicleOwner);
        bytes32 digest = _hashTypedDataV4(
            keccak256(abi.encode(PAIR_TYPEHASH, vehicleId, device, p.nonce, deadline))
        );
        _checkSigner(digest, ownerSignature, vehicleOwner);
        _checkSigner(digest, deviceSignature, device);
        _pairings[device] = Pairing(
            SafeCast.toUint64(vehicleId), uint40(block.timestamp), p.nonce + 1, true
        );
        emit DevicePaired(device, vehicleId, vehicleOwner);
    }

    /// @inheritdoc IDeviceId
    function unpair(address device) external {
        uint256 vehicleId = _pairings[device].vehicleId;
        if (vehicleId == 0) revert DeviceIdNotPaired(device);
        if (msg.sender != _ownerOf(_idOf(device)) && msg.sender != _vehicleOwner(vehicleId)) {
            revert DeviceIdUnauthorizedUnpair(msg.sender);
        }
        _vehicles.detachDevice(vehicleId);
        _clearPairing(device, vehicleId, UnpairReason.Owner);
    }

    /// @inheritdoc IDeviceId
    function onVehicleTransferred(uint256 vehicleId, address device) external {
        if (msg.sender != address(_vehicles)) revert DeviceIdOnlyVehicleId(msg.sender);
        _clearPairing(device, vehicleId, UnpairReason.VehicleTransferred);
    }

    /* VIEWS */

    /// @inheritdoc IDeviceId
    function deviceInfo(address device)
        external
        view
        returns (uint256 deviceId, uint256 vehicleId, address vehicleOwner, uint40 pairedSince)
    {
        deviceId = _idOf(device);
        if (_ownerOf(deviceId) == address(0)) revert DeviceIdUnknownDevice(device);
        Pairing memory p = _pairings[device];
        vehicleId = p.vehicleId;
        pairedSince = p.pairedSince;
        if (vehicleId != 0) vehicleOwner = _vehicleOwner(vehicleId);
    }

    /// @inheritdoc IDeviceId
    function pairingOf(address device) external view returns (Pairing memory) {
        return _pairings[device];
    }

    /// @inheritdoc IDeviceId
    function serialHashOf(address device) external view returns (bytes32) {
        return _serialHashes[device];
    }

    /// @notice The EIP-712 domain separator of claims and pairings.
    /// @return The separator.
    // solhint-disable-next-line func-name-mixedcase
    function DOMAIN_SEPARATOR() external view returns (bytes32) {
        return _domainSeparatorV4();
    }

    /* INTERNAL */

    function _idOf(address device) private pure returns (uint256) {
        return uint256(uint160(device));
    }

    function _vehicleOwner(uint256 vehicleId) private view returns (address) {
        return ERC721(address(_vehicles)).ownerOf(vehicleId);
    }

    function _checkSigner(bytes32 digest, bytes calldata signature, address expected)
        private
        pure
    {
        address signer = ECDSA.recoverCalldata(digest, signature);
        if (signer != expected) revert DeviceIdInvalidSigner(signer, expected);
    }

    function _clearPairing(address device, uint256 vehicleId, UnpairReason reason) private {
        Pairing storage p = _pairings[device];
        p.vehicleId = 0;
        p.pairedSince = 0;
        emit DeviceUnpaired(device, vehicleId, reason);
    }

    /// @dev A transfer (not the mint, and not the claim of an unpaired device) of a paired
    /// device unpairs it.
    function _update(address to, uint256 tokenId, address auth)
        internal
        override
        returns (address from)
    {
        from = super._update(to, tokenId, auth);
        if (from != address(0) && from != to) {
            address device = address(uint160(tokenId));
            uint256 vehicleId = _pairings[device].vehicleId;
            if (vehicleId != 0) {
                _vehicles.detachDevice(vehicleId);
                _clearPairing(device, vehicleId, UnpairReason.DeviceTransferred);
            }
        }
    }
}
