"""Keccak-256, addresses and fast secp256k1 signing and recovery for the protocol."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from functools import lru_cache
from typing import Final

from coincurve import PrivateKey
from coincurve._libsecp256k1 import ffi, lib
from coincurve.context import GLOBAL_CONTEXT

from protocol.exceptions import ProtocolError

__all__ = [
    "SECP256K1_HALF_N",
    "SECP256K1_N",
    "AddressError",
    "InvalidSignerError",
    "MalformedSignatureError",
    "SignatureError",
    "SignatureHighSError",
    "UnrecoverableSignatureError",
    "address_bytes",
    "checksum_address",
    "double_keccak256_many",
    "keccak256",
    "private_key_bytes",
    "private_key_to_address",
    "recover_address",
    "recover_address_bytes",
    "sign_digest",
]

SECP256K1_N: Final = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
"""Order of the secp256k1 group."""
SECP256K1_HALF_N: Final = SECP256K1_N // 2
"""Largest `s` a signature may carry under EIP-2."""

_ADDRESS_RE: Final = re.compile(r"0x[0-9a-fA-F]{40}")


def _pick_keccak() -> tuple[Callable[[bytes], bytes], Callable[[Iterable[bytes]], list[bytes]]]:
    # safe-pysha3 is about 7x faster than pycryptodome per call; pycryptodome is always present
    # (eth-account needs it), so it is the fallback.
    try:
        from _pysha3 import keccak_256
    except ImportError:  # pragma: no cover - depends on the environment
        from Crypto.Hash import keccak

        def _keccak_pycryptodome(data: bytes) -> bytes:
            return keccak.new(digest_bits=256, data=data).digest()

        def _double_pycryptodome(items: Iterable[bytes]) -> list[bytes]:
            return [_keccak_pycryptodome(_keccak_pycryptodome(x)) for x in items]

        return _keccak_pycryptodome, _double_pycryptodome

    def _keccak_pysha3(data: bytes) -> bytes:
        return keccak_256(data).digest()  # type: ignore[no-any-return]

    def _double_pysha3(items: Iterable[bytes]) -> list[bytes]:
        return [keccak_256(keccak_256(x).digest()).digest() for x in items]

    return _keccak_pysha3, _double_pysha3


_KECCAK, _DOUBLE_KECCAK_MANY = _pick_keccak()
keccak256: Final = _KECCAK
double_keccak256_many: Final = _DOUBLE_KECCAK_MANY
"""Keccak-256 (Ethereum's `keccak256`, not NIST SHA3-256) of `data`, 32 bytes.

`double_keccak256_many(items)` returns `[keccak256(keccak256(x)) for x in items]`, fast.
"""


class AddressError(ProtocolError, ValueError):
    """A value is not a valid 20-byte Ethereum address."""

    def __init__(self, value: object, reason: str) -> None:
        self.value = value
        self.reason = reason
        super().__init__(
            f"{value!r} is not an Ethereum address: {reason}; pass 20 raw bytes or '0x' followed "
            "by 40 hex digits (all lower case, all upper case, or a valid EIP-55 checksum)"
        )


class SignatureError(ProtocolError):
    """Root of the errors about signatures."""


class MalformedSignatureError(SignatureError, ValueError):
    """A signature is not 65 bytes r || s || v with v in {27, 28} and r, s in range."""

    def __init__(self, signature: bytes, reason: str) -> None:
        self.signature = signature
        self.reason = reason
        super().__init__(
            f"malformed signature 0x{signature.hex()}: {reason}; expected 65 bytes r || s || v "
            "with 0 < r, s < n and v in {27, 28}"
        )


class SignatureHighSError(MalformedSignatureError):
    """A signature's `s` lies in the upper half of the curve order (rejected by EIP-2)."""

    def __init__(self, signature: bytes, s: int) -> None:
        self.s = s
        super().__init__(
            signature,
            f"s = {s:#x} is above n/2 (EIP-2); the signer must emit the low-s form "
            "(s' = n - s, v flipped), which every libsecp256k1-based signer does",
        )


class UnrecoverableSignatureError(SignatureError, ValueError):
    """No public key can be recovered from a signature and digest."""

    def __init__(self, signature: bytes, digest: bytes) -> None:
        self.signature = signature
        self.digest = digest
        super().__init__(
            f"no public key recovers from signature 0x{signature.hex()} over digest "
            f"0x{digest.hex()}; the signature is corrupt or was not made by secp256k1"
        )


class InvalidSignerError(SignatureError, ValueError):
    """A valid signature was made by someone other than the expected signer."""

    def __init__(self, signer: str, expected: str) -> None:
        self.signer = signer
        self.expected = expected
        super().__init__(
            f"signature recovers to {signer}, expected {expected}; the payload was changed "
            "after signing, signed under another EIP-712 domain (chain id, contract), or "
            "signed with another key"
        )


@lru_cache(maxsize=4096)
def _address_from_str(value: str) -> bytes:
    if not _ADDRESS_RE.fullmatch(value):
        raise AddressError(value, "expected '0x' and 40 hex digits")
    raw = bytes.fromhex(value[2:])
    body = value[2:]
    if body != body.lower() and body != body.upper() and checksum_address(raw) != value:
        raise AddressError(value, "mixed-case address with a wrong EIP-55 checksum")
    return raw


def address_bytes(value: str | bytes) -> bytes:
    """Parse an address into its 20 raw bytes.

    Args:
        value: 20 raw bytes, or a `0x`-prefixed hex string; mixed case must be a valid EIP-55
            checksum.

    Returns:
        The 20-byte address.

    Raises:
        AddressError: `value` is not an address.
    """
    if isinstance(value, str):
        return _address_from_str(value)
    if isinstance(value, bytes | bytearray | memoryview) and len(value) == 20:
        return bytes(value)
    raise AddressError(value, "expected 20 bytes or a hex string")


def checksum_address(value: str | bytes) -> str:
    """Return the EIP-55 checksummed form of an address.

    Args:
        value: 20 raw bytes or a hex address string.

    Returns:
        `0x` followed by 40 hex digits in EIP-55 mixed case.

    Raises:
        AddressError: `value` is not an address.
    """
    raw = bytes(value) if isinstance(value, bytes | bytearray) else None
    if raw is None or len(raw) != 20:
        raw = address_bytes(value)
    lower = raw.hex()
    digest = keccak256(lower.encode("ascii")).hex()
    return "0x" + "".join(
        c.upper() if c > "9" and digest[i] > "7" else c for i, c in enumerate(lower)
    )


def private_key_bytes(private_key: bytes | str) -> bytes:
    """Normalise a secp256k1 private key to 32 bytes.

    Args:
        private_key: 32 raw bytes or 64 hex digits, with or without `0x`.

    Returns:
        The 32-byte key.

    Raises:
        ValueError: the key is not 32 bytes or is outside [1, n - 1].
    """
    raw = (
        bytes.fromhex(private_key.removeprefix("0x"))
        if isinstance(private_key, str)
        else bytes(private_key)
    )
    if len(raw) != 32 or not 0 < int.from_bytes(raw, "big") < SECP256K1_N:
        raise ValueError("a secp256k1 private key is 32 bytes, as an integer in [1, n - 1]")
    return raw


def private_key_to_address(private_key: bytes | str) -> str:
    """Return the checksummed Ethereum address of a private key.

    Args:
        private_key: 32 raw bytes or 64 hex digits.

    Returns:
        The EIP-55 address.
    """
    public = PrivateKey(private_key_bytes(private_key)).public_key.format(compressed=False)
    return checksum_address(keccak256(public[1:])[12:])


def sign_digest(digest: bytes, private_key: bytes | str) -> bytes:
    """Sign a 32-byte digest as Ethereum does.

    libsecp256k1 signs deterministically (RFC 6979) and always emits low `s`.

    Args:
        digest: The 32-byte message hash, e.g. an EIP-712 digest.
        private_key: 32 raw bytes or 64 hex digits.

    Returns:
        65 bytes r || s || v with v in {27, 28}.
    """
    if len(digest) != 32:
        raise ValueError(f"a digest is 32 bytes, got {len(digest)}")
    sig = PrivateKey(private_key_bytes(private_key)).sign_recoverable(digest, hasher=None)
    return sig[:64] + bytes((sig[64] + 27,))


def recover_address_bytes(digest: bytes, signature: bytes) -> bytes:
    """Recover the 20-byte address that signed `digest`, calling libsecp256k1 directly.

    Args:
        digest: The 32-byte message hash.
        signature: 65 bytes r || s || v with v in {27, 28} and low `s` (EIP-2).

    Returns:
        The signer's 20-byte address.

    Raises:
        MalformedSignatureError: wrong length, `v` not 27 or 28, or `r`/`s` out of range.
        SignatureHighSError: `s` above n/2.
        UnrecoverableSignatureError: no public key recovers.
    """
    if len(digest) != 32:
        raise ValueError(f"a digest is 32 bytes, got {len(digest)}")
    if len(signature) != 65:
        raise MalformedSignatureError(bytes(signature), f"length {len(signature)}, expected 65")
    v = signature[64]
    if v != 27 and v != 28:
        raise MalformedSignatureError(bytes(signature), f"v = {v}, expected 27 or 28")
    r = int.from_bytes(signature[:32], "big")
    s = int.from_bytes(signature[32:64], "big")
    if not 0 < r < SECP256K1_N or s == 0:
        raise MalformedSignatureError(
            bytes(signature), "r or s is zero or not below the curve order"
        )
    if s > SECP256K1_HALF_N:
        raise SignatureHighSError(bytes(signature), s)
    ctx = GLOBAL_CONTEXT.ctx
    rsig = ffi.new("secp256k1_ecdsa_recoverable_signature *")
    if not lib.secp256k1_ecdsa_recoverable_signature_parse_compact(
        ctx, rsig, signature[:64], v - 27
    ):
        raise MalformedSignatureError(bytes(signature), "r or s is not below the curve order")
    pubkey = ffi.new("secp256k1_pubkey *")
    if not lib.secp256k1_ecdsa_recover(ctx, pubkey, rsig, digest):
        raise UnrecoverableSignatureError(bytes(signature), bytes(digest))
    out = ffi.new("unsigned char[65]")
    size = ffi.new("size_t *", 65)
    lib.secp256k1_ec_pubkey_serialize(ctx, out, size, pubkey, lib.SECP256K1_EC_UNCOMPRESSED)
    return keccak256(ffi.buffer(out, 65)[1:])[12:]


def recover_address(digest: bytes, signature: bytes) -> str:
    """Recover the checksummed address that signed `digest`.

    Args:
        digest: The 32-byte message hash.
        signature: 65 bytes r || s || v.

    Returns:
        The signer's EIP-55 address.

    Raises:
        MalformedSignatureError: see `recover_address_bytes`.
        UnrecoverableSignatureError: no public key recovers.
    """
    return checksum_address(recover_address_bytes(digest, signature))
