// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {AttestationAnchor} from "../../contracts/AttestationAnchor.sol";
import {IAttestationAnchor} from "../../contracts/interfaces/IAttestationAnchor.sol";
import {InvariantBase} from "../base/Base.sol";

/// @notice Anchors batches signed by random subsets of six keys (only some of them current
/// oracles), with random ids, and replaces the oracle set now and then.
contract AttestationAnchorHandler is InvariantBase {
    AttestationAnchor public immutable anchor;
    uint256[6] internal _keys;
    /// @dev Ghosts: batches anchored, and any anchor accepted without M distinct current
    /// signers (by our own count).
    uint64 public anchored;
    bool public acceptedWithoutQuorum;
    mapping(uint256 key => bool) internal _current;
    uint256 internal _threshold;

    constructor(AttestationAnchor anchor_, uint256[6] memory keys, uint256 threshold) {
        anchor = anchor_;
        _keys = keys;
        for (uint256 i; i < 3; ++i) _current[keys[i]] = true;
        _threshold = threshold;
    }

    function anchorBatch(uint256 idShift, uint256 signerMask, bytes32 root) external {
        uint64 id = anchor.lastBatchId() + 1;
        if (idShift % 8 == 0) id += uint64(idShift % 3); // sometimes a wrong id
        IAttestationAnchor.Batch memory batch =
            IAttestationAnchor.Batch(id, root == 0 ? bytes32(uint256(1)) : root, hex"01", 1, 0, 1);
        bytes32 digest = anchor.batchDigest(batch);
        // Sign with the keys in the mask, in ascending signer order, sometimes one twice.
        uint256[] memory chosen = _sortedKeys(signerMask);
        uint256 n = chosen.length;
        bool duplicate = signerMask & (1 << 6) != 0 && n != 0;
        bytes memory signatures;
        uint256 distinctCurrent;
        for (uint256 i; i < n; ++i) {
            (uint8 v, bytes32 r, bytes32 s) = vm.sign(chosen[i], digest);
            signatures = bytes.concat(signatures, r, s, bytes1(v));
            if (duplicate && i == 0) signatures = bytes.concat(signatures, r, s, bytes1(v));
            if (_current[chosen[i]]) ++distinctCurrent;
        }
        try anchor.anchor(batch, signatures) {
            ++anchored;
            if (distinctCurrent < _threshold || id != anchored) acceptedWithoutQuorum = true;
        } catch {}
    }

    function replaceOracles(uint256 mask, uint256 threshold) external {
        uint256[] memory chosen = _sortedKeys(mask | 1);
        address[] memory signers = new address[](chosen.length);
        for (uint256 i; i < chosen.length; ++i) signers[i] = vm.addr(chosen[i]);
        threshold = 1 + threshold % chosen.length;
        anchor.setOracles(signers, uint8(threshold));
        for (uint256 i; i < 6; ++i) _current[_keys[i]] = false;
        for (uint256 i; i < chosen.length; ++i) _current[chosen[i]] = true;
        _threshold = threshold;
    }

    function _sortedKeys(uint256 mask) internal view returns (uint256[] memory out) {
        uint256 n;
        for (uint256 i; i < 6; ++i) if (mask & (1 << i) != 0) ++n;
        out = new uint256[](n);
        n = 0;
        for (uint256 i; i < 6; ++i) if (mask & (1 << i) != 0) out[n++] = _keys[i];
        // Insertion sort by address.
        for (uint256 i = 1; i < out.length; ++i) {
            uint256 k = out[i];
            uint256 j = i;
            while (j > 0 && vm.addr(out[j - 1]) > vm.addr(k)) {
                out[j] = out[j - 1];
                --j;
            }
            out[j] = k;
        }
    }
}

/// @notice AttestationAnchor: batch ids are sequential; a batch needs M distinct current
/// signers.
contract AttestationAnchorInvariants is InvariantBase {
    AttestationAnchor internal anchor;
    AttestationAnchorHandler internal handler;

    function setUp() public {
        uint256[6] memory keys = [uint256(0xA11), 0xB22, 0xC33, 0xD44, 0xE55, 0xF66];
        address[] memory signers = new address[](3);
        for (uint256 i; i < 3; ++i) signers[i] = vm.addr(keys[i]);
        anchor = new AttestationAnchor(address(this), signers, 2);
        handler = new AttestationAnchorHandler(anchor, keys, 2);
        anchor.grantRole(anchor.DEFAULT_ADMIN_ROLE(), address(handler));
        targetContract(address(handler));
    }

    function invariant_batchIdsAreSequential() public view {
        uint64 last = anchor.lastBatchId();
        assertEq(last, handler.anchored(), "last batch id");
        for (uint64 id = 1; id <= last; ++id) {
            assertTrue(_hasRoot(id), "a batch id was skipped");
        }
        assertTrue(!_hasRoot(last + 1), "a batch past the last");
    }

    function _hasRoot(uint64 id) internal view returns (bool) {
        try anchor.rootOf(id) returns (bytes32 root) {
            return root != bytes32(0);
        } catch {
            return false;
        }
    }

    function invariant_aBatchNeedsMDistinctCurrentSigners() public view {
        assertTrue(!handler.acceptedWithoutQuorum(), "batch anchored without a quorum");
    }
}
