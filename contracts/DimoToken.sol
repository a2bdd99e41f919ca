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
    uint256 private constant _BALANCE_BITS = 96;
    uint256 private constant _BALANCE_MASK = (1 << _BALANCE_BITS) - 1;

    /// @dev Each account's balance (low 96 bits: the cap, 1e27, is below 2**96) and its vote
    /// delegate (high 160 bits) in one slot, so that a transfer reads and writes one slot per
    /// side rather than a balance and a delegate each. OpenZeppelin's own balance and delegate
    /// mappings stay empty; its checkpoints, allowances and nonces are used as they are.
    mapping(address account => uint256 word) private _accounts;
    uint256 private _supply;

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

    /// @notice The total supply.
    /// @return The supply in wei.
    function totalSupply() public view override returns (uint256) {
        return _supply;
    }

    /// @notice The balance of `account`.
    /// @param account The holder.
    /// @return The balance in wei.
    function balanceOf(address account) public view override returns (uint256) {
        return _accounts[account] & _BALANCE_MASK;
    }

    /// @notice Who `account`'s votes are delegated to (zero: nobody, the votes are idle).
    /// @param account The holder.
    /// @return The delegate.
    function delegates(address account) public view override returns (address) {
        return address(uint160(_accounts[account] >> _BALANCE_BITS));
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

    /// @dev OpenZeppelin's `ERC20._update` and `ERC20Votes._update` on the packed words:
    /// same checks, events and checkpoints.
    function _update(address from, address to, uint256 value)
        internal
        override(ERC20, ERC20Votes)
    {
        address fromDelegate;
        address toDelegate;
        if (from == address(0)) {
            // `mint` keeps the supply within the cap.
            _supply += value;
        } else {
            uint256 word = _accounts[from];
            uint256 balance = word & _BALANCE_MASK;
            if (balance < value) revert ERC20InsufficientBalance(from, balance, value);
            unchecked {
                _accounts[from] = word - value;
            }
            fromDelegate = address(uint160(word >> _BALANCE_BITS));
        }
        if (to == address(0)) {
            unchecked {
                _supply -= value;
            }
        } else {
            uint256 word = _accounts[to];
            // balance + value <= supply <= cap < 2**96: it never carries into the delegate.
            unchecked {
                _accounts[to] = word + value;
            }
            toDelegate = address(uint160(word >> _BALANCE_BITS));
        }
        emit Transfer(from, to, value);
        if (from == address(0) || to == address(0)) {
            // Mints (and burns) move the total supply's checkpoints too.
            _transferVotingUnits(from, to, value);
        } else {
            _moveDelegateVotes(fromDelegate, toDelegate, value);
        }
    }

    /// @dev `Votes._delegate` on the packed word.
    function _delegate(address account, address delegatee) internal override {
        uint256 word = _accounts[account];
        address oldDelegate = address(uint160(word >> _BALANCE_BITS));
        uint256 balance = word & _BALANCE_MASK;
        _accounts[account] = uint256(uint160(delegatee)) << _BALANCE_BITS | balance;
        emit DelegateChanged(account, oldDelegate, delegatee);
        _moveDelegateVotes(oldDelegate, delegatee, balance);
    }
}
