// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

/// @title The DIMO token
/// @notice ERC-20 with permit (ERC-2612) and votes (ERC-5805, timestamp clock), capped at
/// one billion tokens. Only holders of `MINTER_ROLE` (the rewards contract) mint.
interface IDimoToken {
    /* ERRORS */

    /// @notice Minting `amount` would take the supply past `cap`.
    error DimoTokenCapExceeded(uint256 amount, uint256 supply, uint256 cap);

    /* FUNCTIONS */

    /// @notice Mints `amount` to `to`.
    /// @dev Only a holder of `MINTER_ROLE`; reverts past the cap.
    /// @param to The receiver.
    /// @param amount The amount in wei (18 decimals).
    function mint(address to, uint256 amount) external;

    /// @notice The hard cap on the total supply: 1,000,000,000 DIMO.
    /// @return The cap in wei.
    function cap() external pure returns (uint256);
}
