// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

/// @title Vehicle identity NFTs
/// @notice One ERC-721 token per physical vehicle, held by its owner. The VIN stays private:
/// the chain keeps only `keccak256(abi.encodePacked(salt, vin))`. A commitment is bound to
/// its first owner: it mints once per owner, and a reveal of salt and VIN proves the vehicle
/// of (commitment, owner), so an observer who copies a pending commitment and mints it first
/// gains nothing: the owner's mint still succeeds, and the reveal points to the owner's
/// token. A salted commitment cannot stop the same VIN being minted twice under different
/// salts (or owners): the chain never sees the VIN. The platform deals with that off-chain:
/// the oracle's VIN attestations and the indexer see the VIN a device reads from the car, and
/// flag a VIN seen on two vehicles.
///
/// Make and model live in a catalog shared by every vehicle of that model. The data market
/// hears of every pairing change and transfer (`setDataMarket`), so opt-ins earn only while
/// a device is paired and end with a transfer.
interface IVehicleId {
    /* TYPES */

    /// @notice Per-vehicle record, one storage slot.
    /// @param modelId Index into the model catalog.
    /// @param year Model year.
    /// @param device The paired aftermarket device, or zero.
    /// @param epoch Number of transfers so far (not the mint); grants made under an older
    /// epoch are void.
    struct Vehicle {
        uint32 modelId;
        uint16 year;
        address device;
        uint32 epoch;
    }

    /* ERRORS */

    /// @notice No vehicle has id `vehicleId`.
    error VehicleIdUnknownVehicle(uint256 vehicleId);
    /// @notice The VIN commitment is zero.
    error VehicleIdEmptyVinCommitment();
    /// @notice `vinCommitment` was minted already to the same owner, as `vehicleId`.
    error VehicleIdVinAlreadyMinted(bytes32 vinCommitment, uint256 vehicleId);
    /// @notice `year` is outside 1886..2100.
    error VehicleIdInvalidYear(uint16 year);
    /// @notice Make or model is empty, longer than 64 bytes, or has `"`, `\` or a control byte.
    error VehicleIdInvalidModelName(string name);
    /// @notice The signature's deadline `deadline` has passed.
    error VehicleIdExpiredSignature(uint256 deadline);
    /// @notice The consent was signed by `signer`, not by the owner `expected`.
    error VehicleIdInvalidSigner(address signer, address expected);
    /// @notice Only the device registry may change pairing; `caller` is not it.
    error VehicleIdUnauthorizedDeviceRegistry(address caller);
    /// @notice The device registry is set already, to `registry`.
    error VehicleIdDeviceRegistryAlreadySet(address registry);
    /// @notice The data market is set already, to `market`.
    error VehicleIdDataMarketAlreadySet(address market);
    /// @notice Vehicle `vehicleId` is paired to `device` already.
    error VehicleIdAlreadyPaired(uint256 vehicleId, address device);

    /* EVENTS */

    /// @notice Vehicle `vehicleId` was minted to `owner` by `minter` (the owner, or a
    /// connection with the owner's consent).
    event VehicleMinted(
        uint256 indexed vehicleId,
        address indexed owner,
        uint32 indexed modelId,
        uint16 year,
        bytes32 vinCommitment,
        address minter
    );
    /// @notice A make and model entered the catalog as `modelId`.
    event ModelRegistered(uint32 indexed modelId, string make, string model);
    /// @notice The device registry allowed to pair vehicles was set.
    event DeviceRegistrySet(address indexed registry);
    /// @notice The data market told of pairing changes and transfers was set.
    event DataMarketSet(address indexed market);

    /* FUNCTIONS */

    /// @notice Mints a vehicle to the caller.
    /// @param make Manufacturer name, e.g. "Hyundai".
    /// @param model Model name, e.g. "Kona Electric".
    /// @param year Model year.
    /// @param vinCommitment `keccak256(abi.encodePacked(salt, vin))`.
    /// @return vehicleId The new token id.
    function mint(string calldata make, string calldata model, uint16 year, bytes32 vinCommitment)
        external
        returns (uint256 vehicleId);

    /// @notice Mints a vehicle to `owner` on their behalf, with their EIP-712 consent
    /// `MintVehicle(owner, minter, make, model, year, vinCommitment, nonce, deadline)`.
    /// @dev Only a manufacturer or connection with `CAN_MINT_VEHICLES`; `minter` is the caller.
    /// @param owner The vehicle's owner, who signed.
    /// @param make Manufacturer name.
    /// @param model Model name.
    /// @param year Model year.
    /// @param vinCommitment `keccak256(abi.encodePacked(salt, vin))`.
    /// @param deadline Last timestamp at which the consent is valid.
    /// @param signature The owner's 65-byte signature.
    /// @return vehicleId The new token id.
    function mintFor(
        address owner,
        string calldata make,
        string calldata model,
        uint16 year,
        bytes32 vinCommitment,
        uint256 deadline,
        bytes calldata signature
    ) external returns (uint256 vehicleId);

    /// @notice Pairs `device` to `vehicleId` and returns the vehicle's owner.
    /// @dev Only the device registry.
    /// @param vehicleId An existing vehicle without a device.
    /// @param device The device's address.
    /// @return owner The vehicle's owner.
    function attachDevice(uint256 vehicleId, address device) external returns (address owner);

    /// @notice Clears the device of `vehicleId`.
    /// @dev Only the device registry.
    /// @param vehicleId The vehicle.
    function detachDevice(uint256 vehicleId) external;

    /// @notice Sets the device registry, once.
    /// @dev Only the admin.
    /// @param registry The DeviceId contract.
    function setDeviceRegistry(address registry) external;

    /// @notice Sets the data market told of pairing changes and transfers, once.
    /// @dev Only the admin.
    /// @param market The DataMarket contract.
    function setDataMarket(address market) external;

    /// @notice The attributes of `vehicleId`.
    /// @param vehicleId An existing vehicle.
    /// @return make Manufacturer name.
    /// @return model Model name.
    /// @return year Model year.
    /// @return device The paired device, or zero.
    function vehicleOf(uint256 vehicleId)
        external
        view
        returns (string memory make, string memory model, uint16 year, address device);

    /// @notice The vehicle minted with `vinCommitment` to `firstOwner`, or 0.
    /// @dev To prove a VIN, reveal salt and VIN; anyone recomputes the commitment.
    /// @param vinCommitment `keccak256(abi.encodePacked(salt, vin))`.
    /// @param firstOwner The owner the vehicle was minted to.
    /// @return vehicleId The vehicle, or 0.
    function vehicleOfVinCommitment(bytes32 vinCommitment, address firstOwner)
        external
        view
        returns (uint256);

    /// @notice The device paired to `vehicleId`, or zero.
    /// @param vehicleId The vehicle.
    /// @return The device address.
    function deviceOf(uint256 vehicleId) external view returns (address);

    /// @notice The catalog entry `modelId`.
    /// @param modelId A catalog index, from 1.
    /// @return make Manufacturer name.
    /// @return model Model name.
    function modelOf(uint32 modelId) external view returns (string memory make, string memory model);

    /// @notice The owner of `vehicleId` and its transfer epoch, in one call.
    /// @dev The epoch starts at 0 and grows by one on every transfer (not the mint), so a
    /// record tagged with an older epoch belongs to a previous owner.
    /// @param vehicleId An existing vehicle.
    /// @return owner The vehicle's owner.
    /// @return epoch The number of transfers of the vehicle so far.
    function ownerAndEpochOf(uint256 vehicleId) external view returns (address owner, uint32 epoch);

    /// @notice The highest vehicle id minted so far (ids start at 1).
    /// @return The last id.
    function lastVehicleId() external view returns (uint256);
}
