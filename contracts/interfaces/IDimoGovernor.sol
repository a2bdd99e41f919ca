// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

/// @title DIMO governance
/// @notice OpenZeppelin Governor over DimoToken votes (ERC-5805, timestamp clock, so every
/// delay is in seconds), executing through a TimelockController (`DimoTimelock`) that holds
/// every admin role of the platform. Settings (constructor arguments; changeable later only
/// by proposal):
/// - voting delay: 1 day live (60 s on the local chain), from proposal to snapshot;
/// - voting period: 7 days live (600 s locally);
/// - proposal threshold: 100,000 DIMO of votes live (0 locally);
/// - quorum: 4% of the total supply at the snapshot (`GovernorVotesQuorumFraction(4)`), For
///   and Abstain votes count toward it (`GovernorCountingSimple`);
/// - timelock minimum delay: 2 days live (60 s locally); the governor is the timelock's only
///   proposer and canceller, and anyone may execute (executor `address(0)`).
/// Holders vote directly or gaslessly with `castVoteBySig` (EIP-712 `Ballot(uint256
/// proposalId,uint8 support,address voter,uint256 nonce)`, domain `name()`, version "1").
interface IDimoGovernor {
    /* FUNCTIONS */

    /// @notice The settings a deployment was made with, for services and the docs page.
    /// @return delay Voting delay in seconds.
    /// @return period Voting period in seconds.
    /// @return threshold Proposal threshold in DIMO wei of votes.
    /// @return quorumPercent Quorum as a percentage of the total supply.
    function settings()
        external
        view
        returns (uint256 delay, uint256 period, uint256 threshold, uint256 quorumPercent);
}
