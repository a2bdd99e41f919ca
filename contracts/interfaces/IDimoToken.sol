// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

/// @title The DIMO token
/// @notice ERC-20 with permit (ERC-2612) and votes (ERC-5805, timestamp clock), capped at
/// one billion tokens. Only holders of `MINTER_ROLE` (the rewards contract) mint.
///
/// Sub-accounts: every address `holder` has keyless sub-accounts `subaccount(holder, id)`.
/// A minter funds its sub-account `id` once (`mintToSubaccount`); from then on the
/// sub-account is flagged: only `holder` spends from it (`transferFromSubaccount`), nothing
/// is transferred or minted into it, it cannot delegate and its balance holds no votes. The
/// rewards contract funds one per epoch with the epoch's posted total, so an epoch's claims can
/// never pay more than that total, whatever its root says.
interface IDimoToken {
    /* ERRORS */

    /// @notice Minting `amount` would take the supply past `cap`.
    error DimoTokenCapExceeded(uint256 amount, uint256 supply, uint256 cap);
    /// @notice `account` is a funded sub-account: nothing moves into it, only its holder's
    /// `transferFromSubaccount` moves out of it, and it cannot delegate.
    error DimoTokenSubaccountFunded(address account);

    /* EVENTS */

    /// @notice `holder` funded its sub-account `id` (at `account`) with `amount`; from now on
    /// only `holder` spends from it and nothing moves into it.
    /// @param holder The minter that funded it (the rewards contract).
    /// @param id The sub-account's number (the rewards contract's epoch).
    /// @param account The sub-account's address.
    /// @param amount The amount minted into it, in wei.
    event SubaccountFunded(
        address indexed holder, uint256 indexed id, address account, uint256 amount
    );

    /* FUNCTIONS */

    /// @notice Mints `amount` to `to`.
    /// @dev Only a holder of `MINTER_ROLE`; reverts past the cap.
    /// @param to The receiver.
    /// @param amount The amount in wei (18 decimals).
    function mint(address to, uint256 amount) external;

    /// @notice The hard cap on the total supply: 1,000,000,000 DIMO.
    /// @return The cap in wei.
    function cap() external pure returns (uint256);

    /// @notice Mints `amount` into the caller's sub-account `id` and flags it as funded.
    /// @dev Only a holder of `MINTER_ROLE`, once per sub-account; reverts past the cap. Tokens
    /// sent to the sub-account before (a gift: nobody holds its key) are first moved to the
    /// caller, so the funded sub-account holds exactly `amount`, and a delegate (which only a
    /// key for the address could have set) is cleared, so its balance never votes.
    /// @param id The sub-account's number (the rewards contract uses the epoch).
    /// @param amount The amount in wei (18 decimals).
    /// @return account The sub-account's address, `subaccount(msg.sender, id)`.
    function mintToSubaccount(uint256 id, uint256 amount) external returns (address account);

    /// @notice Moves `value` from the caller's sub-account `id` to `to`.
    /// @dev Anyone may call it, but only on their own sub-accounts: the address is derived
    /// from `msg.sender`. Reverts with `ERC20InsufficientBalance` past the sub-account's
    /// balance, and with `DimoTokenSubaccountFunded` when `to` is a funded sub-account.
    /// @param id The sub-account's number.
    /// @param to The receiver (not zero).
    /// @param value The amount in wei.
    /// @return Always true (it reverts otherwise), as `transfer` does.
    function transferFromSubaccount(uint256 id, address to, uint256 value)
        external
        returns (bool);

    /// @notice The address of `holder`'s sub-account `id`.
    /// @dev The low 160 bits of `keccak256(abi.encode(holder, id))`. No key is known for it;
    /// finding one is a 160-bit preimage search (2**80 for any pair of a key and a
    /// sub-account), and a key found would still not spend from or delegate a funded
    /// sub-account.
    /// @param holder The sub-account's holder, the only one who funds and spends it.
    /// @param id The sub-account's number.
    /// @return The sub-account's address.
    function subaccount(address holder, uint256 id) external pure returns (address);

    /// @notice Whether `account` is a funded sub-account.
    /// @param account Any address.
    /// @return True once `mintToSubaccount` funded it.
    function isFundedSubaccount(address account) external view returns (bool);
}
