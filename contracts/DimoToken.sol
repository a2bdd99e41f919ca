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
/// minting, and keyless sub-accounts that only their holder spends from (the rewards contract
/// funds one per epoch, so the token's balance check bounds what each epoch pays).
contract DimoToken is ERC20, ERC20Permit, ERC20Votes, AccessControl, IDimoToken {
    /// @notice Role allowed to mint (granted to the rewards contract).
    bytes32 public constant MINTER_ROLE = keccak256("MINTER_ROLE");
    uint256 private constant _CAP = 1_000_000_000 ether;
    uint256 private constant _BALANCE_BITS = 96;
    /// @dev Bit 95 of a funded sub-account's word: the cap, 1e27, is below 2**90, so a balance
    /// never reaches it.
    uint256 private constant _SUBACCOUNT_FLAG = 1 << 95;
    uint256 private constant _BALANCE_MASK = _SUBACCOUNT_FLAG - 1;

    /// @dev Each account's balance (low 95 bits), the funded sub-account flag (bit 95) and its
    /// vote delegate (high 160 bits) in one slot, so that a transfer reads and writes one slot per
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
    function mintToSubaccount(uint256 id, uint256 amount)
        external
        onlyRole(MINTER_ROLE)
        returns (address account)
    {
        account = subaccount(msg.sender, id);
        uint256 word = _accounts[account];
        if (word & _SUBACCOUNT_FLAG != 0) revert DimoTokenSubaccountFunded(account);
        uint256 gift = word & _BALANCE_MASK;
        // Whatever was sent before funding is the holder's: the sub-account then holds exactly
        // `amount`.
        if (gift != 0) _move(account, msg.sender, gift, false);
        // Only a key for the address could have set a delegate: the funding must not vote.
        if (word >> _BALANCE_BITS != 0) _delegate(account, address(0));
        uint256 supply = totalSupply();
        if (amount > _CAP - supply) revert DimoTokenCapExceeded(amount, supply, _CAP);
        _mint(account, amount);
        _accounts[account] |= _SUBACCOUNT_FLAG;
        emit SubaccountFunded(msg.sender, id, account, amount);
    }

    /// @inheritdoc IDimoToken
    function transferFromSubaccount(uint256 id, address to, uint256 value)
        external
        returns (bool)
    {
        if (to == address(0)) revert ERC20InvalidReceiver(address(0));
        _move(subaccount(msg.sender, id), to, value, true);
        return true;
    }

    /// @inheritdoc IDimoToken
    function subaccount(address holder, uint256 id) public pure returns (address) {
        return address(uint160(uint256(keccak256(abi.encode(holder, id)))));
    }

    /// @inheritdoc IDimoToken
    function isFundedSubaccount(address account) external view returns (bool) {
        return _accounts[account] & _SUBACCOUNT_FLAG != 0;
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

    /// @dev Every ordinary mint, burn and transfer: never from or into a funded sub-account.
    function _update(address from, address to, uint256 value)
        internal
        override(ERC20, ERC20Votes)
    {
        _move(from, to, value, false);
    }

    /// @dev OpenZeppelin's `ERC20._update` and `ERC20Votes._update` on the packed words:
    /// same checks, events and checkpoints. `fromSubaccount` lets the holder's own calls spend
    /// from a funded sub-account; nothing ever moves into one once it is funded.
    function _move(address from, address to, uint256 value, bool fromSubaccount) private {
        address fromDelegate;
        address toDelegate;
        if (from == address(0)) {
            // `mint` keeps the supply within the cap.
            _supply += value;
        } else {
            uint256 word = _accounts[from];
            if (!fromSubaccount && word & _SUBACCOUNT_FLAG != 0) {
                revert DimoTokenSubaccountFunded(from);
            }
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
            if (word & _SUBACCOUNT_FLAG != 0) revert DimoTokenSubaccountFunded(to);
            // balance + value <= supply <= cap < 2**90: it never carries into the flag.
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

    /// @dev `Votes._delegate` on the packed word. A funded sub-account has no key and no
    /// delegate: its balance never votes.
    function _delegate(address account, address delegatee) internal override {
        uint256 word = _accounts[account];
        if (word & _SUBACCOUNT_FLAG != 0) revert DimoTokenSubaccountFunded(account);
        address oldDelegate = address(uint160(word >> _BALANCE_BITS));
        uint256 balance = word & _BALANCE_MASK;
        _accounts[account] = uint256(uint160(delegatee)) << _BALANCE_BITS | balance;
        emit DelegateChanged(account, oldDelegate, delegatee);
        _moveDelegateVotes(oldDelegate, delegatee, balance);
    }
}
