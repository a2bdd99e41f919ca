// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

/// @title Privilege bits
/// @notice The scopes a grant or a data product carries, as bits of a uint256. They mirror
/// `protocol/privileges.py` (a test checks they are equal); `docs/privileges.md` lists the
/// VSS signals each one covers.
library Privileges {
    /// @notice Traction battery state, health, temperatures, voltage, current.
    uint256 internal constant BATTERY = 1 << 0;
    /// @notice Charging state, power, energy, cable, limits.
    uint256 internal constant CHARGING = 1 << 1;
    /// @notice Distance travelled.
    uint256 internal constant ODOMETER = 1 << 2;
    /// @notice Speed, acceleration, braking, gear, pedals; never position.
    uint256 internal constant DRIVING = 1 << 3;
    /// @notice Position history: latitude, longitude, heading.
    uint256 internal constant LOCATION = 1 << 4;
    /// @notice The VIN credential.
    uint256 internal constant VIN = 1 << 5;
    /// @notice Raw CAN frames.
    uint256 internal constant RAW = 1 << 6;
    /// @notice Commands to the vehicle (charging control, for grid programmes).
    uint256 internal constant COMMANDS = 1 << 7;
    /// @notice Every defined bit; a mask with any other bit is invalid.
    uint256 internal constant ALL = (1 << 8) - 1;
}

/// @title Data rights of vehicles
/// @notice A vehicle's owner grants a grantee a set of privileges until an expiry, under terms
/// published at a content id (CID); the owner revokes at will. A grant signed by the owner
/// (EIP-712 `Grant`) can be relayed by anyone, so granting costs the owner no gas. A transfer
/// of the vehicle voids every grant at once: each grant records the vehicle's transfer epoch
/// and is live only while that epoch is current (a transfer back does not revive it). A signed
/// grant names the epoch it was signed in, so a signature not yet relayed dies with a transfer
/// too (a sale and buy-back does not revive it), and its owner can cancel it by using up its
/// nonce with `cancelNonce`.
interface IVehicleRights {
    /* TYPES */

    /// @notice One grant, one storage slot.
    /// @param scopes The privilege mask (only defined bits).
    /// @param expiry Timestamp from which the grant is void.
    /// @param epoch The vehicle's transfer epoch when granted.
    struct Grant {
        uint160 scopes;
        uint64 expiry;
        uint32 epoch;
    }

    /* ERRORS */

    /// @notice `caller` does not own vehicle `vehicleId`; `owner` does.
    error VehicleRightsNotOwner(uint256 vehicleId, address caller, address owner);
    /// @notice `scopes` is empty or sets a bit outside `Privileges.ALL`.
    error VehicleRightsInvalidScopes(uint256 scopes);
    /// @notice `expiry` is not in the future.
    error VehicleRightsInvalidExpiry(uint64 expiry);
    /// @notice The grantee is the zero address.
    error VehicleRightsZeroGrantee();
    /// @notice `grantee` holds no grant on `vehicleId` to revoke.
    error VehicleRightsNoGrant(uint256 vehicleId, address grantee);
    /// @notice The signature's deadline `deadline` has passed.
    error VehicleRightsExpiredSignature(uint256 deadline);
    /// @notice The grant was signed by `signer`, not by the owner `expected` (a wrong key, a
    /// used nonce or altered fields all show as a wrong signer).
    error VehicleRightsInvalidSigner(address signer, address expected);
    /// @notice `owner` asked to cancel nonce `nonce`, but its next nonce is `current`.
    error VehicleRightsInvalidNonce(address owner, uint256 nonce, uint256 current);

    /* EVENTS */

    /// @notice `owner` granted `grantee` privileges `scopes` on `vehicleId` until `expiry`,
    /// under the terms at `termsCid`, during transfer epoch `epoch`. Replaces an earlier grant.
    event Granted(
        uint256 indexed vehicleId,
        address indexed grantee,
        address indexed owner,
        uint256 scopes,
        uint64 expiry,
        uint32 epoch,
        bytes termsCid
    );
    /// @notice `owner` revoked the grant of `grantee` on `vehicleId`.
    event Revoked(uint256 indexed vehicleId, address indexed grantee, address indexed owner);
    /// @notice `owner` used up nonce `nonce` without a grant: a grant signed with it can no
    /// longer be relayed.
    event NonceCancelled(address indexed owner, uint256 nonce);

    /* FUNCTIONS */

    /// @notice Grants `grantee` privileges `scopes` on `vehicleId` until `expiry`, replacing
    /// any earlier grant to them.
    /// @dev Only the vehicle's owner. The terms CID is emitted, not stored.
    /// @param vehicleId The vehicle.
    /// @param grantee Who may read.
    /// @param scopes Privilege mask: a non-empty combination of `Privileges` bits.
    /// @param expiry Timestamp from which the grant is void; must be in the future.
    /// @param termsCid The CID (binary form) of the terms the grant is made under.
    function grant(
        uint256 vehicleId,
        address grantee,
        uint256 scopes,
        uint64 expiry,
        bytes calldata termsCid
    ) external;

    /// @notice Makes the grant the vehicle's owner signed as EIP-712 `Grant(uint256 vehicleId,
    /// uint32 epoch,address grantee,uint256 scopes,uint64 expiry,bytes termsCid,uint256 nonce,
    /// uint256 deadline)` (domain "DIMO", version "1"). Anyone may relay.
    /// @dev `epoch` is the vehicle's transfer epoch now (`VehicleId.ownerAndEpochOf`) and
    /// `nonce` is `nonces(owner)`, used up by the call: a signature works once, and never
    /// after the vehicle changed hands or its nonce was cancelled.
    /// @param vehicleId The vehicle.
    /// @param grantee Who may read.
    /// @param scopes Privilege mask.
    /// @param expiry Timestamp from which the grant is void.
    /// @param termsCid The CID of the terms.
    /// @param deadline Last timestamp at which the signature is valid.
    /// @param signature The owner's 65-byte signature.
    function grantBySig(
        uint256 vehicleId,
        address grantee,
        uint256 scopes,
        uint64 expiry,
        bytes calldata termsCid,
        uint256 deadline,
        bytes calldata signature
    ) external;

    /// @notice Uses up the caller's next grant nonce, `nonce`, so that a grant signed with it
    /// and not relayed yet can never be.
    /// @dev Nonces are sequential: cancelling the next one leaves later ones valid.
    /// @param nonce The caller's next nonce (`nonces(caller)`); anything else reverts.
    function cancelNonce(uint256 nonce) external;

    /// @notice The next grant nonce of `owner`.
    /// @param owner The owner.
    /// @return The nonce a grant signed now must carry.
    function nonces(address owner) external view returns (uint256);

    /// @notice Revokes the grant of `grantee` on `vehicleId`.
    /// @dev Only the vehicle's owner; reverts if there is no grant record.
    /// @param vehicleId The vehicle.
    /// @param grantee The grantee.
    function revoke(uint256 vehicleId, address grantee) external;

    /// @notice The live privileges of `grantee` on `vehicleId`.
    /// @param vehicleId The vehicle.
    /// @param grantee The grantee.
    /// @return scopes The privilege mask, or 0 when there is no live grant.
    /// @return expiry The grant's expiry, or 0 when there is no live grant (expired, revoked,
    /// or made before the vehicle's last transfer).
    function privilegesOf(uint256 vehicleId, address grantee)
        external
        view
        returns (uint256 scopes, uint64 expiry);
}
