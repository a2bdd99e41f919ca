// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {ERC721} from "@openzeppelin/contracts/token/ERC721/ERC721.sol";
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {Clones} from "@openzeppelin/contracts/proxy/Clones.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {IDeveloperLicence, IDeveloperLicenceAccount} from "./interfaces/IDeveloperLicence.sol";
import {IParameters, ParameterKeys} from "./interfaces/IParameters.sol";

/// @title DeveloperLicenceAccount
/// @notice The ERC-1271 account at a licence's client id (one clone per licence; the clone's
/// immutable arguments are the licence contract and the licence id).
contract DeveloperLicenceAccount is IDeveloperLicenceAccount {
    bytes4 private constant _MAGIC = 0x1626ba7e;
    bytes4 private constant _INVALID = 0xffffffff;

    /// @inheritdoc IDeveloperLicenceAccount
    function isValidSignature(bytes32 hash, bytes calldata signature)
        external
        view
        returns (bytes4)
    {
        (address licences, uint256 licenceId) = licence();
        (address signer, ECDSA.RecoverError err,) = ECDSA.tryRecover(hash, signature);
        if (err != ECDSA.RecoverError.NoError) return _INVALID;
        return IDeveloperLicence(licences).isSigner(licenceId, signer) ? _MAGIC : _INVALID;
    }

    /// @inheritdoc IDeveloperLicenceAccount
    function licence() public view returns (address, uint256) {
        return abi.decode(Clones.fetchCloneArgs(address(this)), (address, uint256));
    }
}

/// @title DeveloperLicence
/// @notice App teams' licences: an ERC-721 whose each token has a client id, signers and
/// redirect URIs.
contract DeveloperLicence is ERC721, IDeveloperLicence {
    using SafeERC20 for IERC20;

    /// @notice Longest redirect URI, in bytes.
    uint256 public constant MAX_URI_LENGTH = 2048;

    /* STORAGE */

    IERC20 private immutable _token;
    IParameters private immutable _parameters;
    address private immutable _treasury;
    address private immutable _accountImplementation;
    uint256 private _lastId;
    mapping(uint256 licenceId => address) private _clientIds;
    mapping(address clientId => uint256) private _licences;
    mapping(uint256 licenceId => mapping(address signer => bool)) private _signers;
    mapping(uint256 licenceId => mapping(bytes32 uriHash => bool)) private _redirectUris;

    /// @param token The DIMO token fees are paid in.
    /// @param parameters Governed parameters (`DEVELOPER_LICENCE_FEE`).
    /// @param treasury Where fees go (the timelock).
    constructor(IERC20 token, IParameters parameters, address treasury)
        ERC721("DIMO Developer Licence", "DIMO-DL")
    {
        _token = token;
        _parameters = parameters;
        _treasury = treasury;
        _accountImplementation = address(new DeveloperLicenceAccount());
    }

    /* MINT */

    /// @inheritdoc IDeveloperLicence
    function mint() external returns (uint256 licenceId, address clientId) {
        uint256 paid = fee();
        licenceId = ++_lastId;
        clientId = Clones.cloneWithImmutableArgs(
            _accountImplementation, abi.encode(address(this), licenceId)
        );
        _clientIds[licenceId] = clientId;
        _licences[clientId] = licenceId;
        _safeMint(msg.sender, licenceId);
        emit LicenceMinted(licenceId, clientId, msg.sender, paid);
        if (paid != 0) _token.safeTransferFrom(msg.sender, _treasury, paid);
    }

    /* SIGNERS AND REDIRECT URIS */

    /// @inheritdoc IDeveloperLicence
    function addSigner(uint256 licenceId, address signer) external {
        _checkOwner(licenceId);
        if (signer == address(0)) revert DeveloperLicenceZeroSigner(licenceId);
        if (_signers[licenceId][signer]) revert DeveloperLicenceSignerExists(licenceId, signer);
        _signers[licenceId][signer] = true;
        emit SignerAdded(licenceId, signer);
    }

    /// @inheritdoc IDeveloperLicence
    function removeSigner(uint256 licenceId, address signer) external {
        _checkOwner(licenceId);
        if (!_signers[licenceId][signer]) revert DeveloperLicenceNotSigner(licenceId, signer);
        delete _signers[licenceId][signer];
        emit SignerRemoved(licenceId, signer);
    }

    /// @inheritdoc IDeveloperLicence
    function setRedirectUri(uint256 licenceId, string calldata uri, bool enabled) external {
        _checkOwner(licenceId);
        uint256 length = bytes(uri).length;
        if (length == 0 || length > MAX_URI_LENGTH) {
            revert DeveloperLicenceInvalidUri(licenceId, length, MAX_URI_LENGTH);
        }
        bytes32 uriHash = keccak256(bytes(uri));
        if (_redirectUris[licenceId][uriHash] == enabled) {
            revert DeveloperLicenceUriUnchanged(licenceId, uri, enabled);
        }
        _redirectUris[licenceId][uriHash] = enabled;
        emit RedirectUriSet(licenceId, uri, enabled);
    }

    /* VIEWS */

    /// @inheritdoc IDeveloperLicence
    function fee() public view returns (uint256) {
        return _parameters.uintOf(ParameterKeys.DEVELOPER_LICENCE_FEE);
    }

    /// @inheritdoc IDeveloperLicence
    function clientIdOf(uint256 licenceId) external view returns (address) {
        return _clientIds[licenceId];
    }

    /// @inheritdoc IDeveloperLicence
    function licenceOf(address clientId) external view returns (uint256) {
        return _licences[clientId];
    }

    /// @inheritdoc IDeveloperLicence
    function isSigner(uint256 licenceId, address signer) external view returns (bool) {
        return _signers[licenceId][signer];
    }

    /// @inheritdoc IDeveloperLicence
    function isRedirectUri(uint256 licenceId, string calldata uri) external view returns (bool) {
        return _redirectUris[licenceId][keccak256(bytes(uri))];
    }

    /* INTERNAL */

    function _checkOwner(uint256 licenceId) private view {
        address owner = _ownerOf(licenceId);
        if (owner == address(0)) revert DeveloperLicenceUnknownLicence(licenceId);
        if (owner != msg.sender) revert DeveloperLicenceNotOwner(licenceId, msg.sender, owner);
    }
}
