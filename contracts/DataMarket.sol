// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {IERC20Permit} from "@openzeppelin/contracts/token/ERC20/extensions/IERC20Permit.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {IERC721} from "@openzeppelin/contracts/token/ERC721/IERC721.sol";
import {SafeCast} from "@openzeppelin/contracts/utils/math/SafeCast.sol";
import {IDataMarket} from "./interfaces/IDataMarket.sol";
import {IParameters, ParameterKeys} from "./interfaces/IParameters.sol";
import {Privileges} from "./interfaces/IVehicleRights.sol";

/// @title DataMarket
/// @notice Data products, licences bought in DIMO, and revenue shared to opted-in vehicles.
contract DataMarket is AccessControl, IDataMarket {
    using SafeERC20 for IERC20;

    /// @notice Role that lists data products (granted by governance).
    bytes32 public constant CURATOR_ROLE = keccak256("CURATOR_ROLE");
    uint256 private constant _BPS = 10_000;

    /* STORAGE */

    IERC20 private immutable _token;
    IERC721 private immutable _vehicles;
    IParameters private immutable _parameters;
    /// @dev Treasury and its unwithdrawn fees share a slot: a purchase touches it once.
    address private _treasury;
    uint96 private _fees;
    uint256 private _lastProductId;
    mapping(uint256 productId => Product) private _products;
    mapping(uint256 productId => mapping(uint256 vehicleId => Position)) private _positions;
    mapping(address buyer => mapping(uint256 productId => uint64 expiry)) private _licences;
    mapping(address payer => mapping(bytes32 settlementId => bool)) private _settlementsPaid;

    /// @param admin Holder of the admin role (the timelock; on a local chain also the
    /// deployer).
    /// @param token The DIMO token.
    /// @param vehicles The VehicleId contract.
    /// @param parameters The Parameters contract (protocol fee, feature flags).
    /// @param treasury Where fees accrue.
    constructor(
        address admin,
        IERC20 token,
        IERC721 vehicles,
        IParameters parameters,
        address treasury
    ) {
        _token = token;
        _vehicles = vehicles;
        _parameters = parameters;
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
        _setTreasury(treasury);
    }

    /* PRODUCTS */

    /// @inheritdoc IDataMarket
    function listProduct(
        uint256 scopes,
        uint128 pricePerPeriod,
        uint32 periodSeconds,
        bytes calldata termsCid
    ) external onlyRole(CURATOR_ROLE) returns (uint256 productId) {
        if (scopes == 0 || scopes & ~Privileges.ALL != 0) revert DataMarketInvalidScopes(scopes);
        if (pricePerPeriod == 0 || periodSeconds == 0) {
            revert DataMarketInvalidProduct(pricePerPeriod, periodSeconds);
        }
        if (
            scopes & Privileges.COMMANDS != 0
                && !_parameters.flag(ParameterKeys.FEATURE_COMMANDS_SCOPE)
        ) revert DataMarketFeatureDisabled(ParameterKeys.FEATURE_COMMANDS_SCOPE);
        productId = ++_lastProductId;
        _products[productId] = Product(pricePerPeriod, 0, periodSeconds, 0, uint96(scopes));
        emit ProductListed(productId, msg.sender, scopes, pricePerPeriod, periodSeconds, termsCid);
    }

    /* OPT-IN */

    /// @inheritdoc IDataMarket
    function optIn(uint256 vehicleId, uint256 productId) external {
        address owner = _requireOwner(vehicleId);
        Product storage p = _requireProduct(productId);
        Position storage pos = _positions[productId][vehicleId];
        if (pos.optedIn) revert DataMarketAlreadyOptedIn(vehicleId, productId);
        // Not opted in, so nothing is pending: only the snapshot moves.
        pos.snapshot = p.accPerVehicle;
        pos.optedIn = true;
        p.optedIn += 1;
        emit OptedIn(vehicleId, productId, owner);
    }

    /// @inheritdoc IDataMarket
    function optOut(uint256 vehicleId, uint256 productId) external {
        address owner = _requireOwner(vehicleId);
        Product storage p = _requireProduct(productId);
        Position memory pos = _positions[productId][vehicleId];
        if (!pos.optedIn) revert DataMarketNotOptedIn(vehicleId, productId);
        uint128 acc = p.accPerVehicle;
        _positions[productId][vehicleId] =
            Position(acc, SafeCast.toUint120(pos.accrued + uint256(acc - pos.snapshot)), false);
        p.optedIn -= 1;
        emit OptedOut(vehicleId, productId, owner);
    }

    /* PURCHASES */

    /// @inheritdoc IDataMarket
    function buy(uint256 productId, uint32 periods) external returns (uint64) {
        return _buy(productId, periods);
    }

    /// @inheritdoc IDataMarket
    function buyWithPermit(
        uint256 productId,
        uint32 periods,
        uint256 deadline,
        uint8 v,
        bytes32 r,
        bytes32 s
    ) external returns (uint64) {
        uint256 cost = uint256(_products[productId].pricePerPeriod) * periods;
        // A front-run permit is harmless: the allowance it set is what transferFrom needs.
        try IERC20Permit(address(_token)).permit(msg.sender, address(this), cost, deadline, v, r, s)
        {} catch {}
        return _buy(productId, periods);
    }

    /* SETTLEMENTS */

    /// @inheritdoc IDataMarket
    function paySettlement(
        uint256 productId,
        bytes32 settlementId,
        uint256[] calldata vehicleIds,
        uint256[] calldata amounts
    ) external returns (uint256 cost) {
        cost = _creditSettlement(productId, settlementId, vehicleIds, amounts);
        _token.safeTransferFrom(msg.sender, address(this), cost);
    }

    /// @inheritdoc IDataMarket
    function paySettlementWithPermit(
        uint256 productId,
        bytes32 settlementId,
        uint256[] calldata vehicleIds,
        uint256[] calldata amounts,
        uint256 deadline,
        uint8 v,
        bytes32 r,
        bytes32 s
    ) external returns (uint256 cost) {
        cost = _creditSettlement(productId, settlementId, vehicleIds, amounts);
        // A front-run permit is harmless: the allowance it set is what transferFrom needs.
        try IERC20Permit(address(_token)).permit(msg.sender, address(this), cost, deadline, v, r, s)
        {} catch {}
        _token.safeTransferFrom(msg.sender, address(this), cost);
    }

    /* REVENUE */

    /// @inheritdoc IDataMarket
    function claim(uint256 vehicleId, uint256[] calldata productIds)
        external
        returns (uint256 amount)
    {
        address owner = _requireOwner(vehicleId);
        for (uint256 i; i < productIds.length; ++i) {
            uint256 productId = productIds[i];
            Position memory pos = _positions[productId][vehicleId];
            uint256 due = pos.accrued;
            uint128 snapshot = pos.snapshot;
            if (pos.optedIn) {
                snapshot = _products[productId].accPerVehicle;
                due += snapshot - pos.snapshot;
            }
            if (due == 0) continue;
            _positions[productId][vehicleId] = Position(snapshot, 0, pos.optedIn);
            amount += due;
            emit RevenueClaimed(vehicleId, productId, owner, due);
        }
        if (amount == 0) revert DataMarketNothingToClaim(vehicleId);
        _token.safeTransfer(owner, amount);
    }

    /// @inheritdoc IDataMarket
    function withdrawFees() external returns (uint256 amount) {
        address treasury_ = _treasury;
        if (msg.sender != treasury_) revert DataMarketNotTreasury(msg.sender);
        amount = _fees;
        if (amount == 0) revert DataMarketNothingToWithdraw();
        _fees = 0;
        emit FeesWithdrawn(treasury_, amount);
        _token.safeTransfer(treasury_, amount);
    }

    /// @inheritdoc IDataMarket
    function setTreasury(address newTreasury) external onlyRole(DEFAULT_ADMIN_ROLE) {
        _setTreasury(newTreasury);
    }

    /* VIEWS */

    /// @inheritdoc IDataMarket
    function productOf(uint256 productId) external view returns (Product memory) {
        return _products[productId];
    }

    /// @inheritdoc IDataMarket
    function positionOf(uint256 vehicleId, uint256 productId)
        external
        view
        returns (Position memory)
    {
        return _positions[productId][vehicleId];
    }

    /// @inheritdoc IDataMarket
    function claimable(uint256 vehicleId, uint256 productId) external view returns (uint256) {
        Position memory pos = _positions[productId][vehicleId];
        if (!pos.optedIn) return pos.accrued;
        return pos.accrued + uint256(_products[productId].accPerVehicle - pos.snapshot);
    }

    /// @inheritdoc IDataMarket
    function licenceOf(address buyer, uint256 productId) external view returns (uint64) {
        return _licences[buyer][productId];
    }

    /// @inheritdoc IDataMarket
    function treasury() external view returns (address, uint256) {
        return (_treasury, _fees);
    }

    /// @inheritdoc IDataMarket
    function settlementPaid(address payer, bytes32 settlementId) external view returns (bool) {
        return _settlementsPaid[payer][settlementId];
    }

    /// @inheritdoc IDataMarket
    function settlementCost(uint256 total) external view returns (uint256) {
        return total + _settlementFee(total);
    }

    /// @inheritdoc IDataMarket
    function lastProductId() external view returns (uint256) {
        return _lastProductId;
    }

    /* INTERNAL */

    function _buy(uint256 productId, uint32 periods) private returns (uint64 expiry) {
        if (periods == 0) revert DataMarketZeroPeriods();
        Product storage p = _requireProduct(productId);
        uint256 vehicles = p.optedIn;
        if (vehicles == 0) revert DataMarketNoVehiclesOptedIn(productId);
        uint256 cost = uint256(p.pricePerPeriod) * periods;
        uint256 fee = cost * _parameters.uintOf(ParameterKeys.PROTOCOL_FEE_BPS) / _BPS;
        uint256 share = (cost - fee) / vehicles;
        // Rounding dust (less than one wei per vehicle) goes to the treasury with the fee.
        fee = cost - share * vehicles;
        p.accPerVehicle = SafeCast.toUint128(p.accPerVehicle + share);
        _fees = SafeCast.toUint96(_fees + fee);

        uint64 current = _licences[msg.sender][productId];
        uint256 start = current > block.timestamp ? current : block.timestamp;
        expiry = SafeCast.toUint64(start + uint256(p.periodSeconds) * periods);
        _licences[msg.sender][productId] = expiry;
        emit LicenceBought(
            msg.sender, productId, periods, cost, fee, share, uint32(vehicles), expiry
        );
        _token.safeTransferFrom(msg.sender, address(this), cost);
    }

    /// @dev Checks, marks the settlement paid and credits every vehicle; returns what the caller
    /// owes (the token moves after, in the caller).
    function _creditSettlement(
        uint256 productId,
        bytes32 settlementId,
        uint256[] calldata vehicleIds,
        uint256[] calldata amounts
    ) private returns (uint256 cost) {
        uint256 n = vehicleIds.length;
        if (n != amounts.length) revert DataMarketSettlementLengthMismatch(n, amounts.length);
        if (n == 0) revert DataMarketEmptySettlement();
        if (!_parameters.flag(ParameterKeys.FEATURE_GRID_PROGRAMMES)) {
            revert DataMarketFeatureDisabled(ParameterKeys.FEATURE_GRID_PROGRAMMES);
        }
        Product storage p = _requireProduct(productId);
        if (p.scopes & Privileges.CHARGING == 0) {
            revert DataMarketProductLacksScope(productId, Privileges.CHARGING);
        }
        uint64 expiry = _licences[msg.sender][productId];
        if (expiry <= block.timestamp) revert DataMarketNotLicensed(msg.sender, productId, expiry);
        if (_settlementsPaid[msg.sender][settlementId]) {
            revert DataMarketSettlementAlreadyPaid(msg.sender, settlementId);
        }
        _settlementsPaid[msg.sender][settlementId] = true;
        uint256 total;
        for (uint256 i; i < n; ++i) {
            uint256 vehicleId = vehicleIds[i];
            uint256 amount = amounts[i];
            if (amount == 0) revert DataMarketZeroSettlementAmount(vehicleId);
            Position storage pos = _positions[productId][vehicleId];
            if (!pos.optedIn) revert DataMarketNotOptedIn(vehicleId, productId);
            pos.accrued = SafeCast.toUint120(pos.accrued + amount);
            total += amount;
            emit SettlementCredited(vehicleId, productId, settlementId, amount);
        }
        uint256 fee = _settlementFee(total);
        _fees = SafeCast.toUint96(_fees + fee);
        cost = total + fee;
        emit SettlementPaid(msg.sender, productId, settlementId, uint32(n), total, fee);
    }

    function _settlementFee(uint256 total) private view returns (uint256) {
        return total * _parameters.uintOf(ParameterKeys.PROTOCOL_FEE_BPS) / _BPS;
    }

    function _requireOwner(uint256 vehicleId) private view returns (address owner) {
        owner = _vehicles.ownerOf(vehicleId);
        if (msg.sender != owner) revert DataMarketNotVehicleOwner(vehicleId, msg.sender, owner);
    }

    function _requireProduct(uint256 productId) private view returns (Product storage p) {
        p = _products[productId];
        if (p.periodSeconds == 0) revert DataMarketUnknownProduct(productId);
    }

    function _setTreasury(address treasury_) private {
        if (treasury_ == address(0)) revert DataMarketZeroTreasury();
        _treasury = treasury_;
        emit TreasurySet(treasury_);
    }
}
