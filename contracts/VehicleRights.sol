// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {Nonces} from "@openzeppelin/contracts/utils/Nonces.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {IVehicleId} from "./interfaces/IVehicleId.sol";
import {IVehicleRights, Privileges} from "./interfaces/IVehicleRights.sol";

/// @title VehicleRights
/// @notice Owners' grants of data privileges on their vehicles, voided by a transfer.
contract VehicleRights is EIP712, Nonces, IVehicleRights {
    /// @notice EIP-712 type of an owner's signed grant.
    bytes32 public constant GRANT_TYPEHASH = keccak256(
        "Grant(uint256 vehicleId,uint32 epoch,address grantee,uint256 scopes,uint64 expiry,"
        "bytes termsCid,uint256 nonce,uint256 deadline)"
    );

    /* PRIVILEGES (mirrors of protocol/privileges.py) */

    /// @notice Privilege bit: traction battery.
    uint256 public constant BATTERY = Privileges.BATTERY;
    /// @notice Privilege bit: charging.
    uint256 public constant CHARGING = Privileges.CHARGING;
    /// @notice Privilege bit: odometer.
    uint256 public constant ODOMETER = Privileges.ODOMETER;
    /// @notice Privilege bit: driving (no position).
    uint256 public constant DRIVING = Privileges.DRIVING;
    /// @notice Privilege bit: location.
    uint256 public constant LOCATION = Privileges.LOCATION;
    /// @notice Privilege bit: the VIN credential.
    uint256 public constant VIN = Privileges.VIN;
    /// @notice Privilege bit: raw CAN frames.
    uint256 public constant RAW = Privileges.RAW;
    /// @notice Privilege bit: commands.
    uint256 public constant COMMANDS = Privileges.COMMANDS;
    /// @notice Every defined privilege bit.
    uint256 public constant ALL_PRIVILEGES = Privileges.ALL;

    /* STORAGE */

    IVehicleId private immutable _vehicles;
    mapping(uint256 vehicleId => mapping(address grantee => Grant)) private _grants;

    /// @param vehicles The VehicleId contract.
    constructor(IVehicleId vehicles) EIP712("DIMO", "1") {
        _vehicles = vehicles;
    }

    /* GRANTS */

    /// @inheritdoc IVehicleRights
    function grant(
        uint256 vehicleId,
        address grantee,
        uint256 scopes,
        uint64 expiry,
        bytes calldata termsCid
    ) external {
        (address owner, uint32 epoch) = _vehicles.ownerAndEpochOf(vehicleId);
        if (msg.sender != owner) revert VehicleRightsNotOwner(vehicleId, msg.sender, owner);
        _grant(vehicleId, owner, epoch, grantee, scopes, expiry, termsCid);
    }

    /// @inheritdoc IVehicleRights
    function grantBySig(
        uint256 vehicleId,
        address grantee,
        uint256 scopes,
        uint64 expiry,
        bytes calldata termsCid,
        uint256 deadline,
        bytes calldata signature
    ) external {
        if (block.timestamp > deadline) revert VehicleRightsExpiredSignature(deadline);
        (address owner, uint32 epoch) = _vehicles.ownerAndEpochOf(vehicleId);
        bytes32 structHash = keccak256(
            abi.encode(
                GRANT_TYPEHASH,
                vehicleId,
                epoch,
                grantee,
                scopes,
                expiry,
                keccak256(termsCid),
                _useNonce(owner),
                deadline
            )
        );
        address signer = ECDSA.recover(_hashTypedDataV4(structHash), signature);
        if (signer != owner) revert VehicleRightsInvalidSigner(signer, owner);
        _grant(vehicleId, owner, epoch, grantee, scopes, expiry, termsCid);
    }

    /// @inheritdoc IVehicleRights
    function cancelNonce(uint256 nonce) external {
        uint256 current = _useNonce(msg.sender);
        if (nonce != current) revert VehicleRightsInvalidNonce(msg.sender, nonce, current);
        emit NonceCancelled(msg.sender, nonce);
    }

    /// @inheritdoc IVehicleRights
    function nonces(address owner)
        public
        view
        override(Nonces, IVehicleRights)
        returns (uint256)
    {
        return super.nonces(owner);
    }

    /// @inheritdoc IVehicleRights
    function revoke(uint256 vehicleId, address grantee) external {
        (address owner,) = _vehicles.ownerAndEpochOf(vehicleId);
        if (msg.sender != owner) revert VehicleRightsNotOwner(vehicleId, msg.sender, owner);
        if (_grants[vehicleId][grantee].scopes == 0) revert VehicleRightsNoGrant(vehicleId, grantee);
        delete _grants[vehicleId][grantee];
        emit Revoked(vehicleId, grantee, owner);
    }

    /* VIEWS */

    /// @inheritdoc IVehicleRights
    function privilegesOf(uint256 vehicleId, address grantee)
        external
        view
        returns (uint256 scopes, uint64 expiry)
    {
        Grant memory g = _grants[vehicleId][grantee];
        if (g.scopes == 0 || g.expiry <= block.timestamp) return (0, 0);
        (, uint32 epoch) = _vehicles.ownerAndEpochOf(vehicleId);
        if (g.epoch != epoch) return (0, 0);
        return (g.scopes, g.expiry);
    }

    /// @notice The EIP-712 domain separator of signed grants.
    /// @return The separator.
    // solhint-disable-next-line func-name-mixedcase
    function DOMAIN_SEPARATOR() external view returns (bytes32) {
        return _domainSeparatorV4();
    }

    /* INTERNAL */

    function _grant(
        uint256 vehicleId,
        address owner,
        uint32 epoch,
        address grantee,
        uint256 scopes,
        uint64 expiry,
        bytes calldata termsCid
    ) private {
        if (grantee == address(0)) revert VehicleRightsZeroGrantee();
        if (scopes == 0 || scopes & ~Privileges.ALL != 0) revert VehicleRightsInvalidScopes(scopes);
        if (expiry <= block.timestamp) revert VehicleRightsInvalidExpiry(expiry);
        _grants[vehicleId][grantee] = Grant(uint160(scopes), expiry, epoch);
        emit Granted(vehicleId, grantee, owner, scopes, expiry, epoch, termsCid);
    }
}
