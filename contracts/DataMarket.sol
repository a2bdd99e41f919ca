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
import {IVehicleId} from "./interfaces/IVehicleId.sol";
import {Privileges} from "./interfaces/IVehicleRights.sol";

/// @title DataMarket
/// @notice Data products, licences bought in DIMO, and revenue streamed over each licence's
/// period to the opted-in vehicles with a paired device.
contract DataMarket is AccessControl, IDataMarket {
    using SafeERC20 for IERC20;

    /// @notice Role that lists data products (granted by governance).
    bytes32 public constant CURATOR_ROLE = keccak256("CURATOR_ROLE");
    /// @notice The most products one vehicle can be opted in to at once: a transfer or a
    /// pairing change walks them all.
    uint256 public constant MAX_OPT_INS = 16;
    uint256 private constant _BPS = 10_000;

    /* STORAGE */

    IERC20 private immutable _token;
    IVehicleId private immutable _vehicles;
    IParameters private immutable _parameters;
    /// @dev Treasury and its unwithdrawn fees share a slot: a purchase touches it once.
    address private _treasury;
    uint96 private _fees;
    uint256 private _lastProductId;
    mapping(uint256 productId => Product) private _products;
    mapping(uint256 productId => mapping(uint256 vehicleId => Position)) private _positions;
    mapping(address buyer => mapping(uint256 productId => uint64 expiry)) private _licences;
    mapping(address payer => mapping(bytes32 settlementId => bool)) private _settlementsPaid;
    /// @dev The products each vehicle is opted in to now, at most `MAX_OPT_INS`.
    mapping(uint256 vehicleId => uint256[] productIds) private _optIns;

    /// @param admin Holder of the admin role (the timelock; on a local chain also the
    /// deployer).
    /// @param token The DIMO token.
    /// @param vehicles The VehicleId contract.
    /// @param parameters The Parameters contract (protocol fee, feature flags).
    /// @param treasury Where fees accrue.
    constructor(
        address admin,
        IERC20 token,
        IVehicleId vehicles,
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
        // scopes <= Privileges.ALL, 8 bits.
        _products[productId] =
            Product(pricePerPeriod, periodSeconds, 0, uint32(scopes), 0, 0, 0, 0, 0);
        emit ProductListed(productId, msg.sender, scopes, pricePerPeriod, periodSeconds, termsCid);
    }

    /* OPT-IN */

    /// @inheritdoc IDataMarket
    function optIn(uint256 vehicleId, uint256 productId) external {
        address owner = _requireOwner(vehicleId);
        Product storage p = _requireProduct(productId);
        Position storage pos = _positions[productId][vehicleId];
        if (pos.optedIn) revert DataMarketAlreadyOptedIn(vehicleId, productId);
        uint256[] storage list = _optIns[vehicleId];
        if (list.length >= MAX_OPT_INS) revert DataMarketTooManyOptIns(vehicleId, MAX_OPT_INS);
        list.push(productId);
        pos.optedIn = true;
        p.optedIn += 1;
        if (_vehicles.deviceOf(vehicleId) != address(0)) _startEarning(p, pos);
        emit OptedIn(vehicleId, productId, owner);
    }

    /// @inheritdoc IDataMarket
    function optOut(uint256 vehicleId, uint256 productId) external {
        address owner = _requireOwner(vehicleId);
        Product storage p = _requireProduct(productId);
        Position storage pos = _positions[productId][vehicleId];
        if (!pos.optedIn) revert DataMarketNotOptedIn(vehicleId, productId);
        _close(p, pos);
        uint256[] storage list = _optIns[vehicleId];
        uint256 last = list.length - 1;
        for (uint256 i; i < last; ++i) {
            if (list[i] == productId) {
                list[i] = list[last];
                break;
            }
        }
        list.pop();
        emit OptedOut(vehicleId, productId, owner);
    }

    /* VEHICLE HOOKS (called by VehicleId) */

    /// @inheritdoc IDataMarket
    function onVehiclePaired(uint256 vehicleId) external onlyVehicleId {
        uint256[] storage list = _optIns[vehicleId];
        for (uint256 i; i < list.length; ++i) {
            uint256 productId = list[i];
            Position storage pos = _positions[productId][vehicleId];
            if (!pos.earning) _startEarning(_products[productId], pos);
        }
    }

    /// @inheritdoc IDataMarket
    function onVehicleUnpaired(uint256 vehicleId) external onlyVehicleId {
        uint256[] storage list = _optIns[vehicleId];
        for (uint256 i; i < list.length; ++i) {
            uint256 productId = list[i];
            _stopEarning(_products[productId], _positions[productId][vehicleId]);
        }
    }

    /// @inheritdoc IDataMarket
    function onVehicleTransferred(uint256 vehicleId, address from) external onlyVehicleId {
        uint256[] storage list = _optIns[vehicleId];
        for (uint256 i; i < list.length; ++i) {
            uint256 productId = list[i];
            _close(_products[productId], _positions[productId][vehicleId]);
            emit OptedOut(vehicleId, productId, from);
        }
        delete _optIns[vehicleId];
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
            if (pos.earning) {
                // The accumulator as an accrual now would set it; the stored one moves later,
                // never below this.
                snapshot = SafeCast.toUint128(_accNow(_products[productId]));
                due += snapshot - pos.snapshot;
            }
            if (due == 0) continue;
            _positions[productId][vehicleId] = Position(snapshot, 0, pos.optedIn, pos.earning);
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
        if (!pos.earning) return pos.accrued;
        return pos.accrued + (_accNow(_products[productId]) - pos.snapshot);
    }

    /// @inheritdoc IDataMarket
    function undistributed(uint256 productId) external view returns (uint256) {
        Product storage p = _products[productId];
        (, uint256 share) = _pending(p);
        return p.streaming - share * p.earning;
    }

    /// @inheritdoc IDataMarket
    function optInsOf(uint256 vehicleId) external view returns (uint256[] memory) {
        return _optIns[vehicleId];
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
        if (p.optedIn == 0) revert DataMarketNoVehiclesOptedIn(productId);
        uint256 cost = uint256(p.pricePerPeriod) * periods;
        uint256 fee = cost * _parameters.uintOf(ParameterKeys.PROTOCOL_FEE_BPS) / _BPS;

        uint64 current = _licences[msg.sender][productId];
        uint256 start = current > block.timestamp ? current : block.timestamp;
        expiry = SafeCast.toUint64(start + uint256(p.periodSeconds) * periods);
        _licences[msg.sender][productId] = expiry;

        // Release what the stream owes up to now, then add this sale to it: the stream runs
        // until the last live licence of the product ends.
        (uint256 released, uint256 share) = _pending(p);
        uint256 dust = released - share * p.earning;
        uint64 end = p.streamEnd;
        if (expiry > end) end = expiry;
        p.accPerVehicle = SafeCast.toUint128(p.accPerVehicle + share);
        p.lastAccrued = uint64(block.timestamp);
        p.streamEnd = end;
        p.streaming = SafeCast.toUint128(p.streaming - released + (cost - fee));
        _fees = SafeCast.toUint96(_fees + fee + dust);
        emit LicenceBought(msg.sender, productId, periods, cost, fee, expiry, end);
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
            pos.accrued = SafeCast.toUint112(pos.accrued + amount);
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

    /// @dev What moving `p`'s accumulator to now releases from its stream: `released` wei, of
    /// which `share` to each earning vehicle; the rest (rounding dust, or all of it while no
    /// vehicle earns) goes to the treasury. The stream releases at a constant rate from the
    /// last accrual to its end.
    function _pending(Product storage p) private view returns (uint256 released, uint256 share) {
        uint256 remaining = p.streaming;
        if (remaining == 0) return (0, 0);
        uint256 last = p.lastAccrued;
        uint256 end = p.streamEnd;
        released = block.timestamp >= end
            ? remaining
            : remaining * (block.timestamp - last) / (end - last);
        uint256 n = p.earning;
        if (n != 0) share = released / n;
    }

    /// @dev `p`'s accumulator as an accrual now would set it.
    function _accNow(Product storage p) private view returns (uint256) {
        (, uint256 share) = _pending(p);
        return p.accPerVehicle + share;
    }

    /// @dev Moves `p`'s accumulator to now; call before the set of earning vehicles changes.
    function _accrue(Product storage p) private {
        (uint256 released, uint256 share) = _pending(p);
        p.lastAccrued = uint64(block.timestamp);
        if (released == 0) return;
        p.streaming = uint128(p.streaming - released);
        p.accPerVehicle = SafeCast.toUint128(p.accPerVehicle + share);
        _fees = SafeCast.toUint96(_fees + released - share * p.earning);
    }

    /// @dev A paired, opted-in vehicle starts sharing `p`'s stream from now.
    function _startEarning(Product storage p, Position storage pos) private {
        _accrue(p);
        pos.snapshot = p.accPerVehicle;
        pos.earning = true;
        p.earning += 1;
    }

    /// @dev A vehicle stops sharing `p`'s stream; what it earned so far stays claimable.
    function _stopEarning(Product storage p, Position storage pos) private {
        if (!pos.earning) return;
        _accrue(p);
        pos.accrued = SafeCast.toUint112(pos.accrued + uint256(p.accPerVehicle - pos.snapshot));
        pos.snapshot = p.accPerVehicle;
        pos.earning = false;
        p.earning -= 1;
    }

    /// @dev Ends an opt-in (the caller keeps the vehicle's product list).
    function _close(Product storage p, Position storage pos) private {
        _stopEarning(p, pos);
        pos.optedIn = false;
        p.optedIn -= 1;
    }

    modifier onlyVehicleId() {
        if (msg.sender != address(_vehicles)) revert DataMarketOnlyVehicleId(msg.sender);
        _;
    }

    function _requireOwner(uint256 vehicleId) private view returns (address owner) {
        owner = IERC721(address(_vehicles)).ownerOf(vehicleId);
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
