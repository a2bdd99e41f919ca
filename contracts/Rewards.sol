// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {IERC721} from "@openzeppelin/contracts/token/ERC721/IERC721.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {Hashes} from "@openzeppelin/contracts/utils/cryptography/Hashes.sol";
import {Math} from "@openzeppelin/contracts/utils/math/Math.sol";
import {SafeCast} from "@openzeppelin/contracts/utils/math/SafeCast.sol";
import {IDimoToken} from "./interfaces/IDimoToken.sol";
import {IOracleRegistry} from "./interfaces/IOracleRegistry.sol";
import {IParameters, ParameterKeys} from "./interfaces/IParameters.sol";
import {IRewards} from "./interfaces/IRewards.sol";

/// @title Rewards
/// @notice Weekly DIMO issuance to connected vehicles: quorum-posted Merkle roots, a
/// challenge delay with a veto, and claims paid to each vehicle's current owner.
contract Rewards is AccessControl, EIP712, IRewards {
    /// @notice Role that may veto a pending root (besides the admin, the timelock).
    bytes32 public constant GUARDIAN_ROLE = keccak256("GUARDIAN_ROLE");
    /// @notice EIP-712 type the oracles sign to post a root.
    bytes32 public constant ROOT_TYPEHASH =
        keccak256("RewardsRoot(uint256 epoch,bytes32 root,uint256 total,bytes cid)");
    /// @notice Length of an epoch: one week.
    uint256 public constant EPOCH_SECONDS = 7 days;
    /// @notice The shortest challenge delay `post` gives, whatever Parameters says: a veto
    /// always has a window.
    uint256 public constant MIN_CHALLENGE_DELAY = ParameterKeys.MIN_REWARDS_CHALLENGE_DELAY;
    /// @notice The longest challenge delay `post` gives, whatever Parameters says.
    uint256 public constant MAX_CHALLENGE_DELAY = ParameterKeys.MAX_REWARDS_CHALLENGE_DELAY;
    uint256 private constant _BPS = 10_000;
    uint128 private constant _DEFAULT_INITIAL_CAP = 1_105_000 ether;
    uint16 private constant _DEFAULT_DECAY_BPS = 1_500;
    uint32 private constant _DEFAULT_DECAY_EPOCHS = 52;

    /* STORAGE */

    IDimoToken private immutable _token;
    IERC721 private immutable _vehicles;
    IOracleRegistry private immutable _oracles;
    IParameters private immutable _parameters;
    uint256 private immutable _genesis;
    uint128 private _initialCap;
    uint16 private _decayBps;
    uint32 private _decayEpochs;
    uint256 private _totalMinted;
    mapping(uint256 epoch => EpochRoot) private _roots;
    /// @dev Roots vetoed per epoch: a veto is final for its root.
    mapping(uint256 epoch => mapping(bytes32 root => bool)) private _vetoed;
    /// @dev The nodes a claim's proof may end at, once the epoch is funded: its root, and the
    /// nodes of the levels `cacheLevel` stored. A claim reads one slot either way.
    mapping(uint256 epoch => mapping(bytes32 node => bool)) private _nodes;
    /// @dev Bit `vehicleId % 256` of word `vehicleId / 256`: vehicle ids are sequential, so
    /// one warm word serves 256 vehicles.
    mapping(uint256 epoch => mapping(uint256 word => uint256 bits)) private _claimed;

    /// @param admin Holder of the admin role (the timelock; on a local chain also the
    /// deployer): sets the schedule, vetoes, grants `GUARDIAN_ROLE`.
    /// @param token The DIMO token; this contract needs its `MINTER_ROLE`. Each epoch's total
    /// is minted into the token's sub-account `(this, epoch)` and claims pay from it.
    /// @param vehicles The VehicleId contract (owners are paid).
    /// @param oracles The oracle registry (the AttestationAnchor) whose quorum posts roots.
    /// @param parameters The Parameters contract (`REWARDS_CHALLENGE_DELAY`).
    /// @param genesis First second of epoch 0.
    constructor(
        address admin,
        IDimoToken token,
        IERC721 vehicles,
        IOracleRegistry oracles,
        IParameters parameters,
        uint256 genesis
    ) EIP712("DIMO", "1") {
        _token = token;
        _vehicles = vehicles;
        _oracles = oracles;
        _parameters = parameters;
        _genesis = genesis;
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
        _setIssuanceSchedule(_DEFAULT_INITIAL_CAP, _DEFAULT_DECAY_BPS, _DEFAULT_DECAY_EPOCHS);
    }

    /* ROOTS */

    /// @inheritdoc IRewards
    function post(
        uint256 epoch,
        bytes32 root,
        uint256 total,
        bytes calldata cid,
        bytes calldata signatures
    ) external {
        if (block.timestamp < _genesis || epoch >= (block.timestamp - _genesis) / EPOCH_SECONDS) {
            revert RewardsEpochNotEnded(epoch, _endOf(epoch));
        }
        if (root == bytes32(0) || total == 0 || cid.length == 0) revert RewardsInvalidRoot(epoch);
        EpochRoot storage r = _roots[epoch];
        bytes32 existing = r.root;
        if (existing != bytes32(0) && !r.vetoed) revert RewardsEpochAlreadyPosted(epoch, existing);
        if (_vetoed[epoch][root]) revert RewardsRootVetoed(epoch, root);
        uint256 cap = _capOf(epoch);
        if (total > cap) revert RewardsTotalExceedsCap(epoch, total, cap);
        _oracles.requireQuorum(_rootDigest(epoch, root, total, cid), signatures);
        uint256 delay = _parameters.uintOf(ParameterKeys.REWARDS_CHALLENGE_DELAY);
        if (delay < MIN_CHALLENGE_DELAY) delay = MIN_CHALLENGE_DELAY;
        if (delay > MAX_CHALLENGE_DELAY) delay = MAX_CHALLENGE_DELAY;
        // A timestamp plus at most 30 days fits 40 bits until the year 36,812.
        uint40 claimableAt = uint40(block.timestamp + delay);
        _roots[epoch] =
            EpochRoot(root, SafeCast.toUint96(total), claimableAt, false, false, 0, 0);
        emit RootPosted(epoch, root, total, cid, claimableAt);
    }

    /// @inheritdoc IRewards
    function veto(uint256 epoch) external {
        if (!hasRole(GUARDIAN_ROLE, msg.sender) && !hasRole(DEFAULT_ADMIN_ROLE, msg.sender)) {
            revert RewardsUnauthorizedVeto(msg.sender);
        }
        EpochRoot storage r = _roots[epoch];
        bytes32 root = r.root;
        if (root == bytes32(0) || r.vetoed) revert RewardsNoPendingRoot(epoch);
        uint256 claimableAt = r.claimableAt;
        if (block.timestamp >= claimableAt) revert RewardsChallengeOver(epoch, claimableAt);
        r.vetoed = true;
        _vetoed[epoch][root] = true;
        emit RootVetoed(epoch, root, msg.sender);
    }

    /// @inheritdoc IRewards
    function fund(uint256 epoch) external {
        if (_roots[epoch].funded) revert RewardsEpochAlreadyFunded(epoch);
        _fund(epoch);
    }

    /// @inheritdoc IRewards
    function cacheLevel(uint256 epoch, bytes32[] calldata nodes) external {
        uint256 count = nodes.length;
        uint256 depth = Math.log2(count);
        EpochRoot storage r = _roots[epoch];
        if (count < 2 || count != 1 << depth || depth <= r.cachedDepth) {
            revert RewardsInvalidLevel(epoch, count);
        }
        bytes32 root = r.funded ? r.root : _fund(epoch);
        bytes32[] memory level = nodes;
        for (uint256 width = count >> 1; width != 0; width >>= 1) {
            for (uint256 i; i < width; ++i) {
                level[i] = Hashes.commutativeKeccak256(level[2 * i], level[2 * i + 1]);
            }
        }
        if (level[0] != root) revert RewardsInvalidLevel(epoch, count);
        mapping(bytes32 node => bool) storage cached = _nodes[epoch];
        for (uint256 i; i < count; ++i) {
            cached[nodes[i]] = true;
        }
        // count fits memory, so depth < 64.
        r.cachedDepth = uint8(depth);
        emit LevelCached(epoch, uint8(depth));
    }

    /* CLAIMS */

    /// @inheritdoc IRewards
    function claim(uint256 epoch, uint256 vehicleId, uint256 amount, bytes32[] calldata proof)
        external
    {
        _settle(epoch, vehicleId, amount, proof);
        address owner = _vehicles.ownerOf(vehicleId);
        emit Claimed(epoch, vehicleId, owner, amount);
        _token.transferFromSubaccount(epoch, owner, amount);
    }

    /// @inheritdoc IRewards
    function claimMany(Claim[] calldata claims) external {
        uint256 n = claims.length;
        if (n == 0) revert RewardsNoClaims();
        uint256 vehicleId = claims[0].vehicleId;
        address owner = _vehicles.ownerOf(vehicleId);
        for (uint256 i; i < n; ++i) {
            Claim calldata c = claims[i];
            _settle(c.epoch, c.vehicleId, c.amount, c.proof);
            if (c.vehicleId != vehicleId) {
                vehicleId = c.vehicleId;
                owner = _vehicles.ownerOf(vehicleId);
            }
            emit Claimed(c.epoch, vehicleId, owner, c.amount);
            // Each epoch pays from its own sub-account: one transfer per claim.
            _token.transferFromSubaccount(c.epoch, owner, c.amount);
        }
    }

    /* ISSUANCE */

    /// @inheritdoc IRewards
    function setIssuanceSchedule(uint128 initialCap, uint16 decayBps, uint32 decayEpochs)
        external
        onlyRole(DEFAULT_ADMIN_ROLE)
    {
        _setIssuanceSchedule(initialCap, decayBps, decayEpochs);
    }

    /* VIEWS */

    /// @inheritdoc IRewards
    function capOf(uint256 epoch) external view returns (uint256) {
        return _capOf(epoch);
    }

    /// @inheritdoc IRewards
    function issuanceSchedule()
        external
        view
        returns (uint128 initialCap, uint16 decayBps, uint32 decayEpochs)
    {
        return (_initialCap, _decayBps, _decayEpochs);
    }

    /// @inheritdoc IRewards
    function epochRoot(uint256 epoch) external view returns (EpochRoot memory r) {
        r = _roots[epoch];
        // What is gone from the epoch's sub-account: it holds exactly `total` when funded and
        // nothing else can enter it.
        if (r.funded) {
            r.paid = uint96(
                r.total - IERC20(address(_token)).balanceOf(_token.subaccount(address(this), epoch))
            );
        }
    }

    /// @inheritdoc IRewards
    function isVetoed(uint256 epoch, bytes32 root) external view returns (bool) {
        return _vetoed[epoch][root];
    }

    /// @inheritdoc IRewards
    function isClaimed(uint256 epoch, uint256 vehicleId) external view returns (bool) {
        return _claimed[epoch][vehicleId >> 8] & (1 << (vehicleId & 0xff)) != 0;
    }

    /// @inheritdoc IRewards
    function epochBounds(uint256 epoch) external view returns (uint256 start, uint256 end) {
        return (_genesis + epoch * EPOCH_SECONDS, _genesis + (epoch + 1) * EPOCH_SECONDS);
    }

    /// @inheritdoc IRewards
    function epochAt(uint256 timestamp) external view returns (uint256) {
        if (timestamp < _genesis) revert RewardsBeforeGenesis(timestamp, _genesis);
        return (timestamp - _genesis) / EPOCH_SECONDS;
    }

    /// @inheritdoc IRewards
    function genesis() external view returns (uint256) {
        return _genesis;
    }

    /// @inheritdoc IRewards
    function totalMinted() external view returns (uint256) {
        return _totalMinted;
    }

    /// @inheritdoc IRewards
    function rootDigest(uint256 epoch, bytes32 root, uint256 total, bytes calldata cid)
        external
        view
        returns (bytes32)
    {
        return _rootDigest(epoch, root, total, cid);
    }

    /// @notice The EIP-712 domain separator of root signatures.
    /// @return The separator.
    // solhint-disable-next-line func-name-mixedcase
    function DOMAIN_SEPARATOR() external view returns (bytes32) {
        return _domainSeparatorV4();
    }

    /* INTERNAL */

    /// @dev Checks the proof and marks the claim; funds the epoch on its first claim. The
    /// payment itself (never past the epoch's total: its sub-account holds no more) is the
    /// caller's. The proof may end at the root or at any
    /// node `cacheLevel` stored.
    function _settle(uint256 epoch, uint256 vehicleId, uint256 amount, bytes32[] calldata proof)
        private
    {
        bytes32 leaf = keccak256(bytes.concat(keccak256(abi.encode(epoch, vehicleId, amount))));
        bytes32 node = _processProof(proof, leaf);
        EpochRoot storage r = _roots[epoch];
        // Before its first claim an epoch has no nodes: funding it adds the root.
        if (!_nodes[epoch][node] && (r.funded || _fund(epoch) != node)) {
            revert RewardsInvalidProof(epoch, vehicleId, amount);
        }
        mapping(uint256 word => uint256 bits) storage words = _claimed[epoch];
        uint256 index = vehicleId >> 8;
        uint256 word = words[index];
        uint256 bit = 1 << (vehicleId & 0xff);
        if (word & bit != 0) revert RewardsAlreadyClaimed(epoch, vehicleId);
        words[index] = word | bit;
    }

    /// @dev `MerkleProof.processProofCalldata` (sorted pairs), as one tight loop: a claim runs
    /// it once per proof element.
    function _processProof(bytes32[] calldata proof, bytes32 leaf)
        private
        pure
        returns (bytes32 node)
    {
        assembly ("memory-safe") {
            node := leaf
            let end := add(proof.offset, shl(5, proof.length))
            for { let p := proof.offset } lt(p, end) { p := add(p, 0x20) } {
                let sibling := calldataload(p)
                // The smaller of the two first, in the scratch space.
                let low := xor(node, mul(xor(node, sibling), lt(sibling, node)))
                mstore(0x00, low)
                mstore(0x20, xor(low, xor(node, sibling)))
                node := keccak256(0x00, 0x40)
            }
        }
    }

    function _fund(uint256 epoch) private returns (bytes32 root) {
        EpochRoot storage r = _roots[epoch];
        root = r.root;
        if (root == bytes32(0) || r.vetoed) revert RewardsNotClaimable(epoch, 0);
        uint256 claimableAt = r.claimableAt;
        if (block.timestamp < claimableAt) revert RewardsNotClaimable(epoch, claimableAt);
        uint256 total = r.total;
        r.funded = true;
        _nodes[epoch][root] = true;
        _totalMinted += total;
        emit EpochFunded(epoch, root, total);
        _token.mintToSubaccount(epoch, total);
    }

    function _setIssuanceSchedule(uint128 initialCap, uint16 decayBps, uint32 decayEpochs)
        private
    {
        if (decayBps > _BPS || decayEpochs == 0) {
            revert RewardsInvalidSchedule(initialCap, decayBps, decayEpochs);
        }
        _initialCap = initialCap;
        _decayBps = decayBps;
        _decayEpochs = decayEpochs;
        emit IssuanceScheduleSet(initialCap, decayBps, decayEpochs);
    }

    function _capOf(uint256 epoch) private view returns (uint256 cap) {
        cap = _initialCap;
        uint256 keep = _BPS - _decayBps;
        uint256 steps = epoch / _decayEpochs;
        // Floored at every step, as the off-chain formula does; stops once nothing is left.
        for (uint256 i; i < steps && cap != 0; ++i) {
            cap = cap * keep / _BPS;
        }
    }

    function _endOf(uint256 epoch) private view returns (uint256) {
        if (epoch >= type(uint64).max) return type(uint256).max;
        return _genesis + (epoch + 1) * EPOCH_SECONDS;
    }

    function _rootDigest(uint256 epoch, bytes32 root, uint256 total, bytes calldata cid)
        private
        view
        returns (bytes32)
    {
        return _hashTypedDataV4(
            keccak256(abi.encode(ROOT_TYPEHASH, epoch, root, total, keccak256(cid)))
        );
    }
}
