// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

/// @title Developer licences
/// @notice An app team mints a licence, an ERC-721 token, paying the fee in DIMO that
/// governance sets (`DEVELOPER_LICENCE_FEE` in Parameters) to the treasury. Each licence gets
/// its own `clientId`: the address of a minimal account (`DeveloperLicenceAccount`) that
/// answers ERC-1271 `isValidSignature` for the licence's signers. Apps log in to the API with
/// the `clientId` and a signer's key, and owners grant data privileges to the `clientId`
/// (a grant to it is a grant to the licence). The licence's owner adds and removes signers
/// and the redirect URIs the login accepts as its domain.
interface IDeveloperLicence {
    /* ERRORS */

    /// @notice `caller` does not own licence `licenceId`; `owner` does.
    error DeveloperLicenceNotOwner(uint256 licenceId, address caller, address owner);
    /// @notice No licence `licenceId` was minted.
    error DeveloperLicenceUnknownLicence(uint256 licenceId);
    /// @notice The signer is the zero address.
    error DeveloperLicenceZeroSigner(uint256 licenceId);
    /// @notice `signer` is already a signer of licence `licenceId`.
    error DeveloperLicenceSignerExists(uint256 licenceId, address signer);
    /// @notice `signer` is not a signer of licence `licenceId`.
    error DeveloperLicenceNotSigner(uint256 licenceId, address signer);
    /// @notice The redirect URI is empty or longer than `maxLength` bytes.
    error DeveloperLicenceInvalidUri(uint256 licenceId, uint256 length, uint256 maxLength);
    /// @notice The redirect URI already has the state `enabled` on licence `licenceId`.
    error DeveloperLicenceUriUnchanged(uint256 licenceId, string uri, bool enabled);

    /* EVENTS */

    /// @notice `owner` minted licence `licenceId`, whose client id is `clientId`, for `fee`
    /// DIMO wei.
    event LicenceMinted(
        uint256 indexed licenceId, address indexed clientId, address indexed owner, uint256 fee
    );
    /// @notice `signer` may now sign logins of licence `licenceId`.
    event SignerAdded(uint256 indexed licenceId, address indexed signer);
    /// @notice `signer` may no longer sign logins of licence `licenceId`.
    event SignerRemoved(uint256 indexed licenceId, address indexed signer);
    /// @notice Redirect URI `uri` of licence `licenceId` was enabled (`enabled`) or disabled.
    event RedirectUriSet(uint256 indexed licenceId, string uri, bool enabled);

    /* FUNCTIONS */

    /// @notice Mints a licence to the caller, paying the current fee in DIMO to the treasury.
    /// @dev The caller must have approved this contract for the fee (`fee()`).
    /// @return licenceId The new licence's token id (the first is 1).
    /// @return clientId The licence's client id: its ERC-1271 account.
    function mint() external returns (uint256 licenceId, address clientId);

    /// @notice Lets `signer` sign logins of licence `licenceId`.
    /// @dev Only the licence's owner.
    /// @param licenceId The licence.
    /// @param signer The key's address.
    function addSigner(uint256 licenceId, address signer) external;

    /// @notice Stops `signer` signing logins of licence `licenceId`.
    /// @dev Only the licence's owner.
    /// @param licenceId The licence.
    /// @param signer A current signer.
    function removeSigner(uint256 licenceId, address signer) external;

    /// @notice Enables or disables `uri` as a redirect URI (the login's `domain`) of the licence.
    /// @dev Only the licence's owner; the URI is emitted, its hash stored.
    /// @param licenceId The licence.
    /// @param uri The redirect URI, 1 to 2,048 bytes.
    /// @param enabled Whether logins may name it.
    function setRedirectUri(uint256 licenceId, string calldata uri, bool enabled) external;

    /// @notice The fee a mint costs now, in DIMO wei.
    /// @return The fee.
    function fee() external view returns (uint256);

    /// @notice The client id of licence `licenceId`.
    /// @param licenceId The licence.
    /// @return The client id, or the zero address for an unknown licence.
    function clientIdOf(uint256 licenceId) external view returns (address);

    /// @notice The licence whose client id is `clientId`.
    /// @param clientId A client id.
    /// @return The licence id, or 0 when `clientId` is no licence's.
    function licenceOf(address clientId) external view returns (uint256);

    /// @notice Whether `signer` may sign logins of licence `licenceId`.
    /// @param licenceId The licence.
    /// @param signer The address.
    /// @return True for a current signer.
    function isSigner(uint256 licenceId, address signer) external view returns (bool);

    /// @notice Whether `uri` is an enabled redirect URI of licence `licenceId`.
    /// @param licenceId The licence.
    /// @param uri The URI.
    /// @return True when enabled.
    function isRedirectUri(uint256 licenceId, string calldata uri) external view returns (bool);
}

/// @title A developer licence's client id
/// @notice The account at a licence's `clientId`: a minimal clone that answers ERC-1271
/// `isValidSignature` with the magic value when the signature recovers to a current signer of
/// its licence.
interface IDeveloperLicenceAccount {
    /// @notice ERC-1271: whether `signature` over `hash` is the licence's.
    /// @param hash The signed digest (for a login, the EIP-191 `personal_sign` digest).
    /// @param signature A 65-byte ECDSA signature.
    /// @return `0x1626ba7e` when a current signer of the licence signed, else `0xffffffff`.
    function isValidSignature(bytes32 hash, bytes calldata signature)
        external
        view
        returns (bytes4);

    /// @notice The licence this account is the client id of.
    /// @return The DeveloperLicence contract and the licence id.
    function licence() external view returns (address, uint256);
}
