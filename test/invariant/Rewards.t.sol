// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {AttestationAnchor} from "../../contracts/AttestationAnchor.sol";
import {DimoToken} from "../../contracts/DimoToken.sol";
import {ManufacturerRegistry} from "../../contracts/ManufacturerRegistry.sol";
import {Parameters} from "../../contracts/Parameters.sol";
import {Rewards} from "../../contracts/Rewards.sol";
import {VehicleId} from "../../contracts/VehicleId.sol";
import {IRewards} from "../../contracts/interfaces/IRewards.sol";
import {ParameterKeys} from "../../contracts/interfaces/IParameters.sol";
import {Hashes} from "@openzeppelin/contracts/utils/cryptography/Hashes.sol";
import {InvariantBase} from "../base/Base.sol";

/// @notice Drives Rewards: the quorum posts four-leaf roots for ended epochs (some whose
/// leaves add up to more than their total), the admin vetoes, anyone funds and claims, DIMO
/// is sent to the contract or to an epoch's sub-account by mistake, time passes. Ghosts count
/// each vehicle's paid claims and each epoch's payments, the DIMO sent, and the gifts that
/// entered a funded sub-account (there must be none).
contract RewardsHandler is InvariantBase {
    uint256 public constant EPOCHS = 2;
    Rewards public immutable rewards;
    uint256[2] internal _oracleKeys;
    mapping(uint256 epoch => uint256[4] amounts) internal _amounts;
    mapping(uint256 epoch => mapping(uint256 vehicleId => uint256 count)) public claims;
    mapping(uint256 epoch => uint256 amount) public paidOut;
    DimoToken internal immutable token;
    uint256 public donated;
    uint256 public gifted;
    uint256 public giftsIntoFunded;

    constructor(Rewards rewards_, DimoToken token_, uint256[2] memory oracleKeys) {
        rewards = rewards_;
        token = token_;
        _oracleKeys = oracleKeys;
    }

    function post(uint256 e, uint256 seed, bool inflated) external {
        uint256 ended = (block.timestamp - rewards.genesis()) / rewards.EPOCH_SECONDS();
        if (ended == 0) return;
        uint256 epoch = e % (ended < EPOCHS ? ended : EPOCHS);
        uint256[4] memory amounts;
        uint256 sum;
        for (uint256 i; i < 4; ++i) {
            amounts[i] = 1 + uint256(keccak256(abi.encode(seed, i))) % 100_000 ether;
            sum += amounts[i];
        }
        // A bad root: leaves add up to more than the signed total.
        uint256 total = inflated ? sum - amounts[0] : sum;
        bytes32 root = _root(epoch, amounts);
        bytes memory cid = hex"01551220";
        bytes32 digest = rewards.rootDigest(epoch, root, total, cid);
        bytes memory signatures;
        for (uint256 i; i < 2; ++i) {
            (uint8 v, bytes32 r, bytes32 s) = vm.sign(_oracleKeys[i], digest);
            signatures = bytes.concat(signatures, r, s, bytes1(v));
        }
        try rewards.post(epoch, root, total, cid, signatures) {
            _amounts[epoch] = amounts;
        } catch {}
    }

    function veto(uint256 e) external {
        try rewards.veto(e % EPOCHS) {} catch {}
    }

    function fund(uint256 e) external {
        try rewards.fund(e % EPOCHS) {} catch {}
    }

    /// @dev Claims each of the epoch's four leaves (each at most once per call).
    function claim(uint256 e) external {
        uint256 epoch = e % EPOCHS;
        uint256[4] memory amounts = _amounts[epoch];
        for (uint256 i; i < 4; ++i) {
            bytes32[] memory proof = new bytes32[](2);
            proof[0] = _leaf(epoch, i ^ 1, amounts[i ^ 1]);
            uint256 other = i < 2 ? 2 : 0;
            proof[1] = Hashes.commutativeKeccak256(
                _leaf(epoch, other, amounts[other]), _leaf(epoch, other + 1, amounts[other + 1])
            );
            try rewards.claim(epoch, i + 1, amounts[i], proof) {
                claims[epoch][i + 1] += 1;
                paidOut[epoch] += amounts[i];
            } catch {}
        }
    }

    /// @dev Someone sends DIMO to the contract: no epoch may pay it out past its total.
    function donate(uint256 amount) external {
        amount %= 1_000_000 ether;
        token.mint(address(rewards), amount);
        donated += amount;
    }

    /// @dev Someone sends DIMO to an epoch's sub-account: before funding it is handed to the
    /// contract, after funding it must revert.
    function gift(uint256 e, uint256 amount) external {
        uint256 epoch = e % EPOCHS;
        amount %= 1_000_000 ether;
        bool funded = rewards.epochRoot(epoch).funded;
        try token.mint(token.subaccount(address(rewards), epoch), amount) {
            gifted += amount;
            if (funded) giftsIntoFunded += 1;
        } catch {}
    }

    function warp(uint256 seconds_) external {
        vm.warp(block.timestamp + 1 + seconds_ % 7 days);
    }

    function _leaf(uint256 epoch, uint256 i, uint256 amount) internal pure returns (bytes32) {
        return keccak256(bytes.concat(keccak256(abi.encode(epoch, i + 1, amount))));
    }

    function _root(uint256 epoch, uint256[4] memory amounts) internal pure returns (bytes32) {
        return Hashes.commutativeKeccak256(
            Hashes.commutativeKeccak256(_leaf(epoch, 0, amounts[0]), _leaf(epoch, 1, amounts[1])),
            Hashes.commutativeKeccak256(_leaf(epoch, 2, amounts[2]), _leaf(epoch, 3, amounts[3]))
        );
    }
}

/// @notice Rewards: per epoch, paid <= total; total minted <= the issuance schedule; no
/// vehicle claims twice.
contract RewardsInvariants is InvariantBase {
    DimoToken internal token;
    Rewards internal rewards;
    RewardsHandler internal handler;

    function setUp() public {
        vm.warp(1_700_000_000);
        ManufacturerRegistry registry = new ManufacturerRegistry(address(this));
        token = new DimoToken(address(this));
        VehicleId vehicles = new VehicleId(address(this), registry);
        Parameters parameters = new Parameters(address(this));
        parameters.setUint(ParameterKeys.REWARDS_CHALLENGE_DELAY, 1 days);
        uint256[2] memory keys = [uint256(0x0C1), 0x0C2];
        address[] memory signers = new address[](3);
        (signers[0], signers[1], signers[2]) = (vm.addr(keys[0]), vm.addr(keys[1]), address(0xC3));
        AttestationAnchor anchor = new AttestationAnchor(address(this), signers, 2);
        rewards = new Rewards(address(this), token, vehicles, anchor, parameters, block.timestamp);
        token.grantRole(token.MINTER_ROLE(), address(rewards));
        for (uint256 i; i < 4; ++i) {
            vm.prank(address(uint160(0xCA0 + i)));
            vehicles.mint("Hyundai", "Kona", 2020, keccak256(abi.encode(i)));
        }
        // The oracle keys sign in ascending address order.
        if (vm.addr(keys[0]) > vm.addr(keys[1])) (keys[0], keys[1]) = (keys[1], keys[0]);
        handler = new RewardsHandler(rewards, token, keys);
        rewards.grantRole(rewards.GUARDIAN_ROLE(), address(handler));
        token.grantRole(token.MINTER_ROLE(), address(handler));
        targetContract(address(handler));
    }

    /// @notice The handler reaches claims: a posted epoch pays its vehicles after the delay.
    function test_theHandlerPostsAndClaims() public {
        vm.warp(block.timestamp + 8 days);
        handler.post(0, 1, false);
        vm.warp(block.timestamp + 2 days);
        handler.claim(0);
        for (uint256 v = 1; v <= 4; ++v) assertEq(handler.claims(0, v), 1, "claimed");
    }

    /// @dev `paid` is the view's (total less the sub-account's balance); `paidOut` is what
    /// the claims that succeeded paid, counted by the handler.
    function invariant_anEpochNeverPaysPastItsTotal() public view {
        for (uint256 e; e < handler.EPOCHS(); ++e) {
            IRewards.EpochRoot memory r = rewards.epochRoot(e);
            assertLe(handler.paidOut(e), r.total, "paid past the total");
            assertEq(r.paid, handler.paidOut(e), "paid");
        }
        assertEq(handler.giftsIntoFunded(), 0, "a transfer entered a funded sub-account");
    }

    function invariant_mintedIsFundedTotalsWithinTheSchedule() public view {
        uint256 funded;
        uint256 caps;
        uint256 paid;
        for (uint256 e; e < handler.EPOCHS(); ++e) {
            IRewards.EpochRoot memory r = rewards.epochRoot(e);
            if (r.funded) {
                funded += r.total;
                caps += rewards.capOf(e);
            }
            paid += r.paid;
        }
        assertEq(rewards.totalMinted(), funded, "minted");
        assertLe(rewards.totalMinted(), caps, "minted past the schedule");
        assertEq(token.totalSupply(), funded + handler.donated() + handler.gifted(), "supply");
        // What was minted or sent and not paid is in the contract or the epochs' sub-accounts.
        uint256 held = token.balanceOf(address(rewards));
        for (uint256 e; e < handler.EPOCHS(); ++e) {
            held += token.balanceOf(token.subaccount(address(rewards), e));
        }
        assertEq(held, funded + handler.donated() + handler.gifted() - paid, "held");
    }

    function invariant_noVehicleClaimsTwice() public view {
        for (uint256 e; e < handler.EPOCHS(); ++e) {
            for (uint256 v = 1; v <= 4; ++v) {
                assertLe(handler.claims(e, v), 1, "claimed twice");
                assertTrue(
                    (handler.claims(e, v) == 1) == rewards.isClaimed(e, v), "claim bit"
                );
            }
        }
    }
}
