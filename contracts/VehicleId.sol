// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {ERC721} from "@openzeppelin/contracts/token/ERC721/ERC721.sol";
import {Base64} from "@openzeppelin/contracts/utils/Base64.sol";
import {Nonces} from "@openzeppelin/contracts/utils/Nonces.sol";
import {Strings} from "@openzeppelin/contracts/utils/Strings.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {IDataMarket} from "./interfaces/IDataMarket.sol";
import {IDeviceId} from "./interfaces/IDeviceId.sol";
import {IManufacturerRegistry} from "./interfaces/IManufacturerRegistry.sol";
import {IVehicleId} from "./interfaces/IVehicleId.sol";

/// @title VehicleId
/// @notice Vehicle identity NFTs with a private VIN commitment and on-chain attributes.
contract VehicleId is ERC721, EIP712, Nonces, AccessControl, IVehicleId {
    using Strings for uint256;

    /// @notice EIP-712 type of an owner's consent to be minted a vehicle by a connection.
    bytes32 public constant MINT_TYPEHASH = keccak256(
        "MintVehicle(address owner,address minter,string make,string model,uint16 year,"
        "bytes32 vinCommitment,uint256 nonce,uint256 deadline)"
    );
    uint8 private constant _CAN_MINT_VEHICLES = 2;

    /* STORAGE */

    struct Model {
        string make;
        string model;
    }

    IManufacturerRegistry private immutable _registry;
    address private _deviceRegistry;
    IDataMarket private _dataMarket;
    uint256 private _lastVehicleId;
    uint32 private _lastModelId;
    mapping(uint256 vehicleId => Vehicle) private _vehicles;
    /// @dev Keyed by `keccak256(abi.encode(vinCommitment, firstOwner))`.
    mapping(bytes32 vinKey => uint256 vehicleId) private _vehicleByVin;
    mapping(bytes32 modelKey => uint32 modelId) private _modelIds;
    mapping(uint32 modelId => Model) private _models;

    /// @param admin Holder of the admin role (the timelock on a live network).
    /// @param registry The manufacturer registry.
    constructor(address admin, IManufacturerRegistry registry)
        ERC721("DIMO Vehicle ID", "DIMOVEH")
        EIP712("DIMO", "1")
    {
        _registry = registry;
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
    }

    /* MINTING */

    /// @inheritdoc IVehicleId
    function mint(string calldata make, string calldata model, uint16 year, bytes32 vinCommitment)
        external
        returns (uint256)
    {
        return _mintVehicle(msg.sender, make, model, year, vinCommitment);
    }

    /// @inheritdoc IVehicleId
    function mintFor(
        address owner,
        string calldata make,
        string calldata model,
        uint16 year,
        bytes32 vinCommitment,
        uint256 deadline,
        bytes calldata signature
    ) external returns (uint256) {
        _registry.requireCapability(msg.sender, _CAN_MINT_VEHICLES);
        if (block.timestamp > deadline) revert VehicleIdExpiredSignature(deadline);
        bytes32 structHash = keccak256(
            abi.encode(
                MINT_TYPEHASH,
                owner,
                msg.sender,
                keccak256(bytes(make)),
                keccak256(bytes(model)),
                year,
                vinCommitment,
                _useNonce(owner),
                deadline
            )
        );
        address signer = ECDSA.recover(_hashTypedDataV4(structHash), signature);
        if (signer != owner) revert VehicleIdInvalidSigner(signer, owner);
        return _mintVehicle(owner, make, model, year, vinCommitment);
    }

    /* PAIRING (called by the device registry) */

    /// @inheritdoc IVehicleId
    function attachDevice(uint256 vehicleId, address device)
        external
        onlyDeviceRegistry
        returns (address owner)
    {
        owner = _ownerOf(vehicleId);
        if (owner == address(0)) revert VehicleIdUnknownVehicle(vehicleId);
        Vehicle storage v = _vehicles[vehicleId];
        if (v.device != address(0)) revert VehicleIdAlreadyPaired(vehicleId, v.device);
        v.device = device;
        IDataMarket market = _dataMarket;
        if (address(market) != address(0)) market.onVehiclePaired(vehicleId);
    }

    /// @inheritdoc IVehicleId
    function detachDevice(uint256 vehicleId) external onlyDeviceRegistry {
        _vehicles[vehicleId].device = address(0);
        IDataMarket market = _dataMarket;
        if (address(market) != address(0)) market.onVehicleUnpaired(vehicleId);
    }

    /// @inheritdoc IVehicleId
    function setDataMarket(address market) external onlyRole(DEFAULT_ADMIN_ROLE) {
        if (address(_dataMarket) != address(0)) {
            revert VehicleIdDataMarketAlreadySet(address(_dataMarket));
        }
        _dataMarket = IDataMarket(market);
        emit DataMarketSet(market);
    }

    /// @inheritdoc IVehicleId
    function setDeviceRegistry(address registry) external onlyRole(DEFAULT_ADMIN_ROLE) {
        if (_deviceRegistry != address(0)) revert VehicleIdDeviceRegistryAlreadySet(_deviceRegistry);
        _deviceRegistry = registry;
        emit DeviceRegistrySet(registry);
    }

    /* VIEWS */

    /// @inheritdoc IVehicleId
    function vehicleOf(uint256 vehicleId)
        external
        view
        returns (string memory make, string memory model, uint16 year, address device)
    {
        if (_ownerOf(vehicleId) == address(0)) revert VehicleIdUnknownVehicle(vehicleId);
        Vehicle memory v = _vehicles[vehicleId];
        Model storage m = _models[v.modelId];
        return (m.make, m.model, v.year, v.device);
    }

    /// @inheritdoc IVehicleId
    function vehicleOfVinCommitment(bytes32 vinCommitment, address firstOwner)
        external
        view
        returns (uint256)
    {
        return _vehicleByVin[_vinKey(vinCommitment, firstOwner)];
    }

    /// @inheritdoc IVehicleId
    function deviceOf(uint256 vehicleId) external view returns (address) {
        return _vehicles[vehicleId].device;
    }

    /// @inheritdoc IVehicleId
    function modelOf(uint32 modelId) external view returns (string memory, string memory) {
        Model storage m = _models[modelId];
        return (m.make, m.model);
    }

    /// @inheritdoc IVehicleId
    function ownerAndEpochOf(uint256 vehicleId) external view returns (address owner, uint32 epoch) {
        owner = _ownerOf(vehicleId);
        if (owner == address(0)) revert VehicleIdUnknownVehicle(vehicleId);
        epoch = _vehicles[vehicleId].epoch;
    }

    /// @inheritdoc IVehicleId
    function lastVehicleId() external view returns (uint256) {
        return _lastVehicleId;
    }

    /// @notice JSON metadata with make, model and year, as a data URI.
    /// @param vehicleId An existing vehicle.
    /// @return The `data:application/json;base64,...` URI.
    function tokenURI(uint256 vehicleId) public view override returns (string memory) {
        if (_ownerOf(vehicleId) == address(0)) revert VehicleIdUnknownVehicle(vehicleId);
        Vehicle memory v = _vehicles[vehicleId];
        Model storage m = _models[v.modelId];
        bytes memory json = abi.encodePacked(
            '{"name":"DIMO Vehicle #',
            vehicleId.toString(),
            '","attributes":[{"trait_type":"Make","value":"',
            m.make,
            '"},{"trait_type":"Model","value":"',
            m.model,
            '"},{"trait_type":"Year","value":',
            uint256(v.year).toString(),
            "}]}"
        );
        return string.concat("data:application/json;base64,", Base64.encode(json));
    }

    /// @notice The EIP-712 domain separator of consents.
    /// @return The separator.
    // solhint-disable-next-line func-name-mixedcase
    function DOMAIN_SEPARATOR() external view returns (bytes32) {
        return _domainSeparatorV4();
    }

    /// @inheritdoc ERC721
    function supportsInterface(bytes4 interfaceId)
        public
        view
        override(ERC721, AccessControl)
        returns (bool)
    {
        return super.supportsInterface(interfaceId);
    }

    /* INTERNAL */

    modifier onlyDeviceRegistry() {
        if (msg.sender != _deviceRegistry) revert VehicleIdUnauthorizedDeviceRegistry(msg.sender);
        _;
    }

    function _mintVehicle(
        address owner,
        string calldata make,
        string calldata model,
        uint16 year,
        bytes32 vinCommitment
    ) private returns (uint256 vehicleId) {
        if (vinCommitment == bytes32(0)) revert VehicleIdEmptyVinCommitment();
        if (year < 1886 || year > 2100) revert VehicleIdInvalidYear(year);
        bytes32 vinKey = _vinKey(vinCommitment, owner);
        uint256 existing = _vehicleByVin[vinKey];
        if (existing != 0) revert VehicleIdVinAlreadyMinted(vinCommitment, existing);
        uint32 modelId = _modelIdOf(make, model);
        vehicleId = ++_lastVehicleId;
        _vehicleByVin[vinKey] = vehicleId;
        _vehicles[vehicleId] = Vehicle(modelId, year, address(0), 0);
        _mint(owner, vehicleId);
        emit VehicleMinted(vehicleId, owner, modelId, year, vinCommitment, msg.sender);
    }

    /// @dev A commitment is bound to its first owner: a copy minted by anyone else is another
    /// key.
    function _vinKey(bytes32 vinCommitment, address owner) private pure returns (bytes32) {
        return keccak256(abi.encode(vinCommitment, owner));
    }

    /// @dev The catalog id of (make, model), adding it on first use.
    function _modelIdOf(string calldata make, string calldata model)
        private
        returns (uint32 modelId)
    {
        bytes32 key = keccak256(abi.encode(make, model));
        modelId = _modelIds[key];
        if (modelId != 0) return modelId;
        _checkName(make);
        _checkName(model);
        modelId = ++_lastModelId;
        _modelIds[key] = modelId;
        _models[modelId] = Model(make, model);
        emit ModelRegistered(modelId, make, model);
    }

    /// @dev Names go into JSON metadata verbatim, so they must not need escaping.
    function _checkName(string calldata name) private pure {
        bytes calldata b = bytes(name);
        if (b.length == 0 || b.length > 64) revert VehicleIdInvalidModelName(name);
        for (uint256 i; i < b.length; ++i) {
            bytes1 c = b[i];
            if (c < 0x20 || c == 0x22 || c == 0x5c || c == 0x7f) {
                revert VehicleIdInvalidModelName(name);
            }
        }
    }

    /// @dev A transfer (not a mint) starts a new epoch, which voids the grants of earlier
    /// owners, unpairs a paired vehicle (the new owner pairs again) and ends the vehicle's
    /// opt-ins in the data market.
    function _update(address to, uint256 tokenId, address auth)
        internal
        override
        returns (address from)
    {
        from = super._update(to, tokenId, auth);
        if (from != address(0) && from != to) {
            Vehicle storage v = _vehicles[tokenId];
            address device = v.device;
            // 2**32 transfers of one vehicle cannot happen; the wrap is unreachable.
            unchecked {
                v.epoch += 1;
            }
            if (device != address(0)) {
                v.device = address(0);
                IDeviceId(_deviceRegistry).onVehicleTransferred(tokenId, device);
            }
            IDataMarket market = _dataMarket;
            if (address(market) != address(0)) market.onVehicleTransferred(tokenId, from);
        }
    }
}
