// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";
import {ERC20Permit} from "@openzeppelin/contracts/token/ERC20/extensions/ERC20Permit.sol";
import {ERC20Votes} from "@openzeppelin/contracts/token/ERC20/extensions/ERC20Votes.sol";
import {Nonces} from "@openzeppelin/contracts/utils/Nonces.sol";
import {IDimoToken} from "./interfaces/IDimoToken.sol";

/// @title DimoToken
/// @notice The DIMO token: permit, votes on a timestamp clock, a one-billion cap, role-gated
/// minting.
contract DimoToken is ERC20, ERC20Permit, ERC20Votes, AccessControl, IDimoToken {
    /// @notice Role allowed to mint (granted to the rewards contract).
    bytes32 public constant MINTER_ROLE = keccak256("MINTER_ROLE");
    uint256 private constant _CAP = 1_000_000_000 ether;

    /// @param admin Holder of the admin role (the timelock on a live network).
    constructor(address admin) ERC20("DIMO", "DIMO") ERC20Permit("DIMO") {
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
    }

    /// @inheritdoc IDimoToken
    function mint(address to, uint256 amount) external onlyRole(MINTER_ROLE) {
        uint256 supply = totalSupply();
        if (amount > _CAP - supply) revert DimoTokenCapExceeded(amount, supply, _CAP);
        _mint(to, amount);
    }

    /// @inheritdoc IDimoToken
    function cap() external pure returns (uint256) {
        return _CAP;
    }

    /// @notice Votes are checkpointed by timestamp, as suits L2 networks.
    /// @return The current timestamp.
    function clock() public view override returns (uint48) {
        return uint48(block.timestamp);
    }

    /// @notice ERC-6372 clock description.
    /// @return The machine-readable clock mode.
    // solhint-disable-next-line func-name-mixedcase
    function CLOCK_MODE() public pure override returns (string memory) {
        return "mode=timestamp";
    }

    /// @inheritdoc ERC20Permit
    function nonces(address owner) public view override(ERC20Permit, Nonces) returns (uint256) {
        return super.nonces(owner);
    }

    function _update(address from, address to, uint256 value)
        internal
        override(ERC20, ERC20Votes)
    {
        super._update(from, to, value);
    }
}
