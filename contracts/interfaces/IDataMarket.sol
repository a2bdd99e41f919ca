// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

/// @title Data licences with revenue streamed to vehicle owners
/// @notice Curators approved by governance (holders of `CURATOR_ROLE`) list data products: a
/// privilege mask, a price in DIMO per period, a period length and a terms CID. Owners opt
/// their vehicles in and out. A buyer buys whole periods of a product's licence, paying in
/// DIMO (ERC-2612 permit supported). The protocol fee (`PROTOCOL_FEE_BPS` in Parameters)
/// accrues to the treasury at once.
///
/// Revenue is earned over time, not at the sale: the rest of each sale joins the product's
/// stream, which releases at a constant rate until the last live licence of the product ends
/// (`streamEnd`; a sale that ends later stretches it). Each second of the stream is shared
/// equally among the vehicles earning during that second: opted in AND paired with a device
/// (only they can deliver data). A per-product accumulator keeps this O(1): a vehicle that
/// opts in one block after a sale earns its share of the rest of the licence period; one
/// that opts in just before a sale and out just after earns a few seconds' share; a vehicle
/// without a device earns nothing. A vehicle counts from its opt-in or pairing, whichever is
/// later, and stops at its opt-out, unpairing or transfer.
///
/// Rounding rule: an accrual that releases `r` wei while `n` vehicles earn credits each
/// `floor(r / n)`; the remainder (less than `n` wei), and all of `r` while no vehicle earns,
/// goes to the treasury with the fees. The stream releases `floor(streaming * dt / (end -
/// last))` over `dt` seconds, and everything left at its end. Nothing is lost: the fees, the
/// vehicles' credits and the stream not yet released add up to every sale's cost exactly.
///
/// Revenue belongs to the vehicle, not to whoever owned it when it was earned: `claim` pays
/// the vehicle's current owner. An opt-in belongs to the owner who made it: a transfer of the
/// vehicle (which also starts a new transfer epoch, voiding grants) ends every opt-in of the
/// vehicle, with an `OptedOut` naming the seller; the new owner opts in again if they wish.
///
/// Settlements: with the `FEATURE_GRID_PROGRAMMES` flag on, a utility holding a live licence of
/// a product with the CHARGING scope pays a demand-response settlement through the market: each
/// listed vehicle (opted in to that product) is credited its amount exactly, as revenue of the
/// product that its current owner claims with `claim`, and the protocol fee
/// `total * PROTOCOL_FEE_BPS / 10_000` (floor) is charged on top of the total. A settlement id
/// is paid at most once per payer.
interface IDataMarket {
    /* TYPES */

    /// @notice A data product, three storage slots: the listing; the accumulator; the stream
    /// and its sharers (a claim reads only the last two).
    /// @param pricePerPeriod Price of one period, in DIMO wei.
    /// @param periodSeconds Length of one licence period.
    /// @param optedIn Number of vehicles opted in now.
    /// @param scopes Privilege mask a licence carries.
    /// @param accPerVehicle Revenue credited so far to a vehicle earning throughout, in wei,
    /// as of `lastAccrued`.
    /// @param lastAccrued When the accumulator last moved.
    /// @param streamEnd When the stream runs dry: the latest expiry of a licence sold.
    /// @param streaming Revenue of licences sold but not released yet, in wei.
    /// @param earning Of the vehicles opted in, the number paired with a device now: the
    /// stream's sharers.
    struct Product {
        uint128 pricePerPeriod;
        uint32 periodSeconds;
        uint32 optedIn;
        uint32 scopes;
        uint128 accPerVehicle;
        uint64 lastAccrued;
        uint64 streamEnd;
        uint128 streaming;
        uint32 earning;
    }

    /// @notice A vehicle's standing in one product, one storage slot.
    /// @param snapshot The product's accumulator when the vehicle's revenue was last settled.
    /// @param accrued Revenue settled but not claimed yet, in wei.
    /// @param optedIn Whether the vehicle is opted in now.
    /// @param earning Whether it shares the stream now (opted in and paired).
    struct Position {
        uint128 snapshot;
        uint112 accrued;
        bool optedIn;
        bool earning;
    }

    /* ERRORS */

    /// @notice No product has id `productId`.
    error DataMarketUnknownProduct(uint256 productId);
    /// @notice `scopes` is empty or sets a bit outside the defined privileges.
    error DataMarketInvalidScopes(uint256 scopes);
    /// @notice A product needs a non-zero price and period; got `pricePerPeriod`, `periodSeconds`.
    error DataMarketInvalidProduct(uint128 pricePerPeriod, uint32 periodSeconds);
    /// @notice The feature flag `key` must be on in Parameters for this.
    error DataMarketFeatureDisabled(bytes32 key);
    /// @notice `caller` does not own vehicle `vehicleId`; `owner` does.
    error DataMarketNotVehicleOwner(uint256 vehicleId, address caller, address owner);
    /// @notice Vehicle `vehicleId` is opted in to `productId` already.
    error DataMarketAlreadyOptedIn(uint256 vehicleId, uint256 productId);
    /// @notice Vehicle `vehicleId` is not opted in to `productId`.
    error DataMarketNotOptedIn(uint256 vehicleId, uint256 productId);
    /// @notice A purchase must be of at least one period.
    error DataMarketZeroPeriods();
    /// @notice Vehicle `vehicleId` is opted in to `max` products already.
    error DataMarketTooManyOptIns(uint256 vehicleId, uint256 max);
    /// @notice Only the VehicleId contract calls the vehicle hooks; `caller` is not it.
    error DataMarketOnlyVehicleId(address caller);
    /// @notice No vehicle is opted in to `productId`, so there is nothing to license.
    error DataMarketNoVehiclesOptedIn(uint256 productId);
    /// @notice Vehicle `vehicleId` has no revenue to claim.
    error DataMarketNothingToClaim(uint256 vehicleId);
    /// @notice Only the treasury may withdraw; `caller` is not it.
    error DataMarketNotTreasury(address caller);
    /// @notice The treasury has no fees to withdraw.
    error DataMarketNothingToWithdraw();
    /// @notice The treasury must not be the zero address.
    error DataMarketZeroTreasury();
    /// @notice A settlement lists `vehicles` vehicles but `amounts` amounts.
    error DataMarketSettlementLengthMismatch(uint256 vehicles, uint256 amounts);
    /// @notice A settlement must credit at least one vehicle.
    error DataMarketEmptySettlement();
    /// @notice The settlement's amount for vehicle `vehicleId` is zero.
    error DataMarketZeroSettlementAmount(uint256 vehicleId);
    /// @notice `payer` holds no live licence of `productId` (its licence ended at `expiry`;
    /// 0: never bought).
    error DataMarketNotLicensed(address payer, uint256 productId, uint64 expiry);
    /// @notice Product `productId` lacks the privilege `scope` this needs.
    error DataMarketProductLacksScope(uint256 productId, uint256 scope);
    /// @notice `payer` has paid settlement `settlementId` already.
    error DataMarketSettlementAlreadyPaid(address payer, bytes32 settlementId);

    /* EVENTS */

    /// @notice `curator` listed `productId`.
    event ProductListed(
        uint256 indexed productId,
        address indexed curator,
        uint256 scopes,
        uint128 pricePerPeriod,
        uint32 periodSeconds,
        bytes termsCid
    );
    /// @notice `owner` opted `vehicleId` in to `productId`; from this block buyers of the
    /// product may read it.
    event OptedIn(uint256 indexed vehicleId, uint256 indexed productId, address indexed owner);
    /// @notice `owner` opted `vehicleId` out of `productId`, or the vehicle left `owner` (a
    /// transfer ends its opt-ins); from this block buyers may not read it.
    event OptedOut(uint256 indexed vehicleId, uint256 indexed productId, address indexed owner);
    /// @notice `buyer` bought `periods` periods of `productId` for `cost`, of which `fee` went
    /// to the treasury and the rest joined the product's revenue stream, which now runs until
    /// `streamEnd`. The licence now runs until `expiry`.
    event LicenceBought(
        address indexed buyer,
        uint256 indexed productId,
        uint32 periods,
        uint256 cost,
        uint256 fee,
        uint64 expiry,
        uint64 streamEnd
    );
    /// @notice `owner` claimed `amount` of `vehicleId`'s revenue from `productId`.
    event RevenueClaimed(
        uint256 indexed vehicleId, uint256 indexed productId, address indexed owner, uint256 amount
    );
    /// @notice The treasury became `treasury`.
    event TreasurySet(address indexed treasury);
    /// @notice `treasury` withdrew `amount` of fees.
    event FeesWithdrawn(address indexed treasury, uint256 amount);
    /// @notice `payer` paid settlement `settlementId` under its licence of `productId`:
    /// `total` credited to `vehicles` vehicles (one `SettlementCredited` each) plus `fee` to
    /// the treasury.
    event SettlementPaid(
        address indexed payer,
        uint256 indexed productId,
        bytes32 indexed settlementId,
        uint32 vehicles,
        uint256 total,
        uint256 fee
    );
    /// @notice Settlement `settlementId` credited `amount` to `vehicleId`'s revenue from
    /// `productId` (claimable by its owner with `claim`).
    event SettlementCredited(
        uint256 indexed vehicleId,
        uint256 indexed productId,
        bytes32 indexed settlementId,
        uint256 amount
    );

    /* FUNCTIONS */

    /// @notice Lists a data product and returns its id (from 1).
    /// @dev Only a curator. A product with the COMMANDS privilege needs the
    /// `FEATURE_COMMANDS_SCOPE` flag on.
    /// @param scopes Privilege mask a licence carries.
    /// @param pricePerPeriod Price of one period, in DIMO wei; non-zero.
    /// @param periodSeconds Length of one period; non-zero.
    /// @param termsCid The CID of the licence terms (emitted, not stored).
    /// @return productId The new product's id.
    function listProduct(
        uint256 scopes,
        uint128 pricePerPeriod,
        uint32 periodSeconds,
        bytes calldata termsCid
    ) external returns (uint256 productId);

    /// @notice Opts `vehicleId` in to `productId`: while it is paired with a device, it shares
    /// the product's revenue stream.
    /// @dev Only the vehicle's owner; at most `MAX_OPT_INS` products per vehicle.
    /// @param vehicleId The vehicle.
    /// @param productId The product.
    function optIn(uint256 vehicleId, uint256 productId) external;

    /// @notice Opts `vehicleId` out of `productId`; revenue earned so far stays claimable.
    /// @dev Only the vehicle's owner.
    /// @param vehicleId The vehicle.
    /// @param productId The product.
    function optOut(uint256 vehicleId, uint256 productId) external;

    /// @notice `vehicleId` was paired with a device: its opt-ins start earning.
    /// @dev Only the VehicleId contract.
    /// @param vehicleId The vehicle.
    function onVehiclePaired(uint256 vehicleId) external;

    /// @notice `vehicleId` lost its device: its opt-ins stop earning (earnings stay).
    /// @dev Only the VehicleId contract.
    /// @param vehicleId The vehicle.
    function onVehicleUnpaired(uint256 vehicleId) external;

    /// @notice `vehicleId` was transferred away from `from`: every opt-in of it ends.
    /// @dev Only the VehicleId contract, in the transfer. Emits `OptedOut` naming `from`.
    /// @param vehicleId The vehicle.
    /// @param from Its previous owner.
    function onVehicleTransferred(uint256 vehicleId, address from) external;

    /// @notice Buys `periods` periods of `productId`'s licence for `pricePerPeriod * periods`
    /// DIMO, taken with `transferFrom` (approve first).
    /// @dev The licence runs from max(now, current expiry). The price less the fee streams
    /// from now until max(`streamEnd`, the new expiry). Reverts if no vehicle is opted in.
    /// @param productId The product.
    /// @param periods How many periods; non-zero.
    /// @return expiry The licence's new expiry.
    function buy(uint256 productId, uint32 periods) external returns (uint64 expiry);

    /// @notice `buy` with an ERC-2612 permit of the price, signed by the caller.
    /// @dev A permit that fails (say, front-run) is ignored if the allowance suffices anyway.
    /// @param productId The product.
    /// @param periods How many periods; non-zero.
    /// @param deadline The permit's deadline.
    /// @param v The permit signature's v.
    /// @param r The permit signature's r.
    /// @param s The permit signature's s.
    /// @return expiry The licence's new expiry.
    function buyWithPermit(
        uint256 productId,
        uint32 periods,
        uint256 deadline,
        uint8 v,
        bytes32 r,
        bytes32 s
    ) external returns (uint64 expiry);

    /// @notice Pays a demand-response settlement: credits each of `vehicleIds` its amount as
    /// revenue of `productId`, and takes the total plus the protocol fee from the caller with
    /// `transferFrom` (approve `settlementCost(total)` first).
    /// @dev Needs `FEATURE_GRID_PROGRAMMES` on, a live licence of `productId` held by the
    /// caller, the CHARGING scope in the product, every vehicle opted in to it now and every
    /// amount non-zero. A vehicle listed twice is credited twice. `settlementId` (the
    /// settlement's id off-chain) is paid once per caller.
    /// @param productId The licensed product the settlement is paid through.
    /// @param settlementId The settlement's id; one payment per caller.
    /// @param vehicleIds The vehicles paid.
    /// @param amounts Each vehicle's amount, in DIMO wei.
    /// @return cost What the caller paid: the total and the fee, in wei.
    function paySettlement(
        uint256 productId,
        bytes32 settlementId,
        uint256[] calldata vehicleIds,
        uint256[] calldata amounts
    ) external returns (uint256 cost);

    /// @notice `paySettlement` with an ERC-2612 permit of its cost, signed by the caller.
    /// @dev A permit that fails (say, front-run) is ignored if the allowance suffices anyway.
    /// @param productId The licensed product the settlement is paid through.
    /// @param settlementId The settlement's id; one payment per caller.
    /// @param vehicleIds The vehicles paid.
    /// @param amounts Each vehicle's amount, in DIMO wei.
    /// @param deadline The permit's deadline.
    /// @param v The permit signature's v.
    /// @param r The permit signature's r.
    /// @param s The permit signature's s.
    /// @return cost What the caller paid: the total and the fee, in wei.
    function paySettlementWithPermit(
        uint256 productId,
        bytes32 settlementId,
        uint256[] calldata vehicleIds,
        uint256[] calldata amounts,
        uint256 deadline,
        uint8 v,
        bytes32 r,
        bytes32 s
    ) external returns (uint256 cost);

    /// @notice Pays `vehicleId`'s revenue from `productIds` to the caller, its current owner.
    /// @dev Only the vehicle's owner. Reverts if the total is zero.
    /// @param vehicleId The vehicle.
    /// @param productIds The products to claim from.
    /// @return amount The total paid, in wei.
    function claim(uint256 vehicleId, uint256[] calldata productIds)
        external
        returns (uint256 amount);

    /// @notice Pays the accrued fees and dust to the treasury.
    /// @dev Only the treasury.
    /// @return amount The amount paid, in wei.
    function withdrawFees() external returns (uint256 amount);

    /// @notice Sets the treasury that fees accrue to (fees accrued so far move with it).
    /// @dev Only the admin (the timelock).
    /// @param newTreasury The new treasury.
    function setTreasury(address newTreasury) external;

    /// @notice The product `productId`.
    /// @param productId The product.
    /// @return The product's record.
    function productOf(uint256 productId) external view returns (Product memory);

    /// @notice The standing of `vehicleId` in `productId`.
    /// @param vehicleId The vehicle.
    /// @param productId The product.
    /// @return The position record.
    function positionOf(uint256 vehicleId, uint256 productId)
        external
        view
        returns (Position memory);

    /// @notice Revenue `vehicleId` can claim from `productId` now.
    /// @param vehicleId The vehicle.
    /// @param productId The product.
    /// @return The amount in wei.
    function claimable(uint256 vehicleId, uint256 productId) external view returns (uint256);

    /// @notice Revenue held for `productId` that no vehicle can claim yet: the stream not yet
    /// released, as of now (what an accrual now would send to the treasury included).
    /// @param productId The product.
    /// @return The amount in wei.
    function undistributed(uint256 productId) external view returns (uint256);

    /// @notice The products `vehicleId` is opted in to now.
    /// @param vehicleId The vehicle.
    /// @return The product ids, in no particular order.
    function optInsOf(uint256 vehicleId) external view returns (uint256[] memory);

    /// @notice When `buyer`'s licence of `productId` ends (0: never bought).
    /// @param buyer The buyer.
    /// @param productId The product.
    /// @return The expiry timestamp.
    function licenceOf(address buyer, uint256 productId) external view returns (uint64);

    /// @notice The treasury and its fees not yet withdrawn.
    /// @return account The treasury's address.
    /// @return accrued Fees and dust, in wei.
    function treasury() external view returns (address account, uint256 accrued);

    /// @notice Whether `payer` has paid settlement `settlementId`.
    /// @param payer The utility.
    /// @param settlementId The settlement's id.
    /// @return Whether it is paid.
    function settlementPaid(address payer, bytes32 settlementId) external view returns (bool);

    /// @notice What a settlement crediting `total` costs its payer now: the total and the fee.
    /// @param total The sum of the settlement's amounts, in wei.
    /// @return The cost in wei.
    function settlementCost(uint256 total) external view returns (uint256);

    /// @notice The number of products listed so far (ids run from 1).
    /// @return The last product id.
    function lastProductId() external view returns (uint256);
}
