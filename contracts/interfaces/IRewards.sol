// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

/// @title Weekly DIMO rewards to connected vehicles
/// @notice Time is cut into weekly epochs from `genesis`. After an epoch ends, the oracle
/// quorum (M of N signatures, the AttestationAnchor's oracle set) posts the epoch's
/// allocation: a Merkle root over `(epoch, vehicleId, amount)` leaves, the total, and the CID
/// of the allocation document, which lists every vehicle's amount, proof and the measured
/// inputs of its points. Anyone can recompute that document from public inputs
/// (`dimo rewards verify`).
///
/// A posted root can be vetoed by the timelock or a guardian during the challenge delay
/// (`REWARDS_CHALLENGE_DELAY` in Parameters, 24 hours by default, held by `post` within
/// [`MIN_CHALLENGE_DELAY`, `MAX_CHALLENGE_DELAY`] = [60 s, 30 days]: never zero, so a veto
/// always has a window, and never so long that `claimableAt` overflows). A vetoed epoch can
/// be posted again, but never with a vetoed root: a veto is final for that root, so its
/// signatures, readable on-chain, cannot re-post it.
///
/// Once the delay has passed, the epoch's total is minted once (by `fund`, or by the first
/// claim of the epoch) into the token's sub-account `subaccount(this, epoch)`, and each
/// vehicle's amount is paid from there to the vehicle's current owner against its proof, at
/// most once per epoch. An epoch never pays more than its posted total: only this contract
/// spends from the sub-account, nothing else can enter it, and a claim past its balance
/// reverts in the token (`ERC20InsufficientBalance(subaccount, balance, amount)`), so a bad
/// root (leaves adding up to more than the total) cannot drain tokens minted for other
/// epochs.
///
/// Issuance cap: `initialCap` per epoch, reduced by `decayBps` every `decayEpochs` epochs,
/// floored to the wei at each step: `cap(e) = floor(cap(e - decayEpochs) * (10_000 -
/// decayBps) / 10_000)`. By default 1,105,000 DIMO, 15%, 52 epochs (a year of weeks). A
/// posted total never exceeds its epoch's cap, and an epoch is minted once, so the total
/// minted never exceeds the sum of the caps of the funded epochs.
interface IRewards {
    /* TYPES */

    /// @notice An epoch's posted root, two storage slots (`total` fits 96 bits: a total never
    /// exceeds its epoch's cap, and `post` refuses a cap above `uint96`).
    /// @param root Merkle root (OpenZeppelin StandardMerkleTree) of the epoch's leaves.
    /// @param total Sum of the leaves' amounts, in DIMO wei.
    /// @param claimableAt When the challenge delay ends and claims open (unix seconds).
    /// @param vetoed Whether the root was vetoed (it pays nothing).
    /// @param funded Whether the total has been minted into the epoch's sub-account.
    /// @param cachedDepth The depth of the deepest level of the tree stored by `cacheLevel`
    /// (0: only the root); a claim's proof may stop there.
    /// @param paid What the epoch's claims have paid so far, in DIMO wei; at most `total`.
    /// Not stored: `epochRoot` computes it as `total` less the sub-account's balance (0 before
    /// funding).
    struct EpochRoot {
        bytes32 root;
        uint96 total;
        uint40 claimableAt;
        bool vetoed;
        bool funded;
        uint8 cachedDepth;
        uint96 paid;
    }

    /// @notice One epoch's claim for one vehicle.
    /// @param epoch The epoch.
    /// @param vehicleId The vehicle.
    /// @param amount Its amount in the epoch's allocation, in DIMO wei.
    /// @param proof The Merkle path from the leaf `(epoch, vehicleId, amount)` to the root,
    /// or to the epoch's cached level.
    struct Claim {
        uint256 epoch;
        uint256 vehicleId;
        uint256 amount;
        bytes32[] proof;
    }

    /* ERRORS */

    /// @notice Epoch `epoch` has not ended; it ends at `endsAt`.
    error RewardsEpochNotEnded(uint256 epoch, uint256 endsAt);
    /// @notice The root or total is zero, or the CID is empty.
    error RewardsInvalidRoot(uint256 epoch);
    /// @notice The total `total` is above the epoch's cap `cap`.
    error RewardsTotalExceedsCap(uint256 epoch, uint256 total, uint256 cap);
    /// @notice Epoch `epoch` already has root `root`, pending or claimable (only a vetoed root
    /// can be replaced).
    error RewardsEpochAlreadyPosted(uint256 epoch, bytes32 root);
    /// @notice Epoch `epoch` has no root that can be vetoed: none was posted, or it was vetoed.
    error RewardsNoPendingRoot(uint256 epoch);
    /// @notice `root` was vetoed for epoch `epoch`; a veto is final for that root.
    error RewardsRootVetoed(uint256 epoch, bytes32 root);
    /// @notice The challenge delay of epoch `epoch` ended at `claimableAt`: too late to veto.
    error RewardsChallengeOver(uint256 epoch, uint256 claimableAt);
    /// @notice `caller` is neither a guardian nor the admin.
    error RewardsUnauthorizedVeto(address caller);
    /// @notice Epoch `epoch` pays nothing yet: no root, a vetoed root, or a challenge delay
    /// that ends at `claimableAt` (0 when there is no live root).
    error RewardsNotClaimable(uint256 epoch, uint256 claimableAt);
    /// @notice Epoch `epoch` is minted already.
    error RewardsEpochAlreadyFunded(uint256 epoch);
    /// @notice Vehicle `vehicleId` was paid for epoch `epoch` already.
    error RewardsAlreadyClaimed(uint256 epoch, uint256 vehicleId);
    /// @notice The proof does not lead from `(epoch, vehicleId, amount)` to the epoch's root
    /// nor to a node of its cached level.
    error RewardsInvalidProof(uint256 epoch, uint256 vehicleId, uint256 amount);
    /// @notice `count` nodes are not a whole level of `epoch`'s tree deeper than its cached
    /// one (a power of two above `2 ** cachedDepth` whose pairs hash up to the root).
    error RewardsInvalidLevel(uint256 epoch, uint256 count);
    /// @notice No claims were given.
    error RewardsNoClaims();
    /// @notice `timestamp` is before `genesis`, the start of epoch 0.
    error RewardsBeforeGenesis(uint256 timestamp, uint256 genesis);
    /// @notice The schedule needs `decayBps` at most 10,000 and `decayEpochs` above zero.
    error RewardsInvalidSchedule(uint256 initialCap, uint256 decayBps, uint256 decayEpochs);

    /* EVENTS */

    /// @notice The quorum posted `root` for `epoch`, with `total` DIMO wei over the allocation
    /// document at `cid`; claims open at `claimableAt`.
    event RootPosted(
        uint256 indexed epoch, bytes32 indexed root, uint256 total, bytes cid, uint64 claimableAt
    );
    /// @notice `by` vetoed `root` of `epoch`; it pays nothing.
    event RootVetoed(uint256 indexed epoch, bytes32 indexed root, address indexed by);
    /// @notice `total` DIMO wei were minted into the token sub-account of `epoch`, for its
    /// claims.
    event EpochFunded(uint256 indexed epoch, bytes32 indexed root, uint256 total);
    /// @notice The `2 ** depth` nodes of `epoch`'s tree at `depth` were stored: from now on a
    /// claim's proof may stop there, `depth` hashes short of the root.
    event LevelCached(uint256 indexed epoch, uint8 depth);
    /// @notice Vehicle `vehicleId` was paid `amount` for `epoch`, to its owner `owner` (the
    /// token's `Transfer` indexes the owner).
    event Claimed(uint256 indexed epoch, uint256 indexed vehicleId, address owner, uint256 amount);
    /// @notice The issuance schedule became `initialCap` per epoch, less `decayBps` every
    /// `decayEpochs` epochs.
    event IssuanceScheduleSet(uint256 initialCap, uint16 decayBps, uint32 decayEpochs);

    /* FUNCTIONS */

    /// @notice Posts the allocation root of an ended epoch, signed by a quorum of oracles.
    /// @dev Anyone may relay. Claims open after the challenge delay read from Parameters,
    /// held within [`MIN_CHALLENGE_DELAY`, `MAX_CHALLENGE_DELAY`] (an unset parameter gives
    /// the minimum). Reverts with `RewardsRootVetoed` for a root vetoed for this epoch.
    /// @param epoch The epoch, ended.
    /// @param root The allocation's Merkle root.
    /// @param total The sum of its amounts, at most `capOf(epoch)`.
    /// @param cid The allocation document's CID, in binary form.
    /// @param signatures Oracle signatures of `rootDigest(epoch, root, total, cid)`, 65 bytes
    /// each, concatenated in ascending signer order.
    function post(
        uint256 epoch,
        bytes32 root,
        uint256 total,
        bytes calldata cid,
        bytes calldata signatures
    ) external;

    /// @notice Vetoes the pending root of `epoch` during its challenge delay.
    /// @dev Only a holder of `GUARDIAN_ROLE` or `DEFAULT_ADMIN_ROLE` (the timelock).
    /// @param epoch The epoch.
    function veto(uint256 epoch) external;

    /// @notice Mints the total of `epoch` into its token sub-account, once its challenge
    /// delay is over.
    /// @dev Anyone may call; the first claim of an epoch does it otherwise.
    /// @param epoch The epoch.
    function fund(uint256 epoch) external;

    /// @notice Stores a whole level of `epoch`'s tree, so that claims prove less: each level
    /// saves a claimant one proof element (about 700 gas); storing level `d` costs about
    /// `2 ** d * 22,100` gas once, for every claim of the epoch.
    /// @dev Anyone may call (funding the epoch if its delay is over). `nodes` are the
    /// `2 ** d` nodes at depth `d` in tree order (OpenZeppelin's StandardMerkleTree layout:
    /// index `2 ** d - 1 + i`); they must hash up, pair by pair, to the root. Every level
    /// from the root down to `floor(log2(leaves))` is whole.
    /// @param epoch The epoch.
    /// @param nodes The level's nodes.
    function cacheLevel(uint256 epoch, bytes32[] calldata nodes) external;

    /// @notice Pays `vehicleId`'s `amount` for `epoch` to the vehicle's current owner.
    /// @dev Anyone may call; the tokens go to the owner.
    /// @param epoch The epoch.
    /// @param vehicleId The vehicle.
    /// @param amount Its amount in the allocation.
    /// @param proof The Merkle path of the leaf `(epoch, vehicleId, amount)`, whole or cut
    /// at the epoch's cached depth (its last `cachedDepth` elements left out).
    function claim(uint256 epoch, uint256 vehicleId, uint256 amount, bytes32[] calldata proof)
        external;

    /// @notice Pays several claims (epochs, vehicles) in one transaction, one transfer per
    /// claim (each epoch pays from its own sub-account).
    /// @param claims The claims.
    function claimMany(Claim[] calldata claims) external;

    /// @notice Sets the issuance schedule.
    /// @dev Only the admin (the timelock). Caps of epochs not yet posted follow it.
    /// @param initialCap Cap of the first epochs, in DIMO wei.
    /// @param decayBps Reduction of the cap at each step, in basis points.
    /// @param decayEpochs Epochs between reductions.
    function setIssuanceSchedule(uint128 initialCap, uint16 decayBps, uint32 decayEpochs)
        external;

    /// @notice The issuance cap of `epoch`.
    /// @param epoch Any epoch.
    /// @return The cap in DIMO wei.
    function capOf(uint256 epoch) external view returns (uint256);

    /// @notice The issuance schedule.
    /// @return initialCap Cap of the first epochs, in DIMO wei.
    /// @return decayBps Reduction at each step, in basis points.
    /// @return decayEpochs Epochs between reductions.
    function issuanceSchedule()
        external
        view
        returns (uint128 initialCap, uint16 decayBps, uint32 decayEpochs);

    /// @notice The posted root of `epoch` (all zero if none).
    /// @param epoch The epoch.
    /// @return The root, total, claim time, flags and what its claims have paid.
    function epochRoot(uint256 epoch) external view returns (EpochRoot memory);

    /// @notice Whether `root` was vetoed for `epoch` (then it can never be posted again).
    /// @param epoch The epoch.
    /// @param root The root.
    /// @return Whether it was vetoed.
    function isVetoed(uint256 epoch, bytes32 root) external view returns (bool);

    /// @notice Whether vehicle `vehicleId` was paid for `epoch`.
    /// @param epoch The epoch.
    /// @param vehicleId The vehicle.
    /// @return True once claimed.
    function isClaimed(uint256 epoch, uint256 vehicleId) external view returns (bool);

    /// @notice Start and end (exclusive) of `epoch`, unix seconds.
    /// @param epoch Any epoch.
    /// @return start The epoch's first second.
    /// @return end The first second after it.
    function epochBounds(uint256 epoch) external view returns (uint256 start, uint256 end);

    /// @notice The epoch that `timestamp` falls in.
    /// @param timestamp Unix seconds, at or after genesis.
    /// @return The epoch.
    function epochAt(uint256 timestamp) external view returns (uint256);

    /// @notice The first second of epoch 0.
    /// @return Unix seconds.
    function genesis() external view returns (uint256);

    /// @notice DIMO wei minted by this contract so far.
    /// @return The sum of the funded epochs' totals.
    function totalMinted() external view returns (uint256);

    /// @notice The EIP-712 digest the oracles sign to post a root.
    /// @param epoch The epoch.
    /// @param root The root.
    /// @param total The total.
    /// @param cid The allocation document's CID, in binary form.
    /// @return The digest.
    function rootDigest(uint256 epoch, bytes32 root, uint256 total, bytes calldata cid)
        external
        view
        returns (bytes32);
}
