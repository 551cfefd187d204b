"""Independent check of libsignal-style Curve25519 signatures (docs/protocol-notes.md#signatures).

Uses PyPI `xeddsa` (libxeddsa, written independently of libsignal) and, for verification, also
PyPI `cryptography`'s Ed25519 with a pure-Python Montgomery-to-Edwards conversion.

Usage (hex arguments, one result line on stdout):
  xeddsa_check.py verify PUB MSG SIG   -> "valid" or "invalid"
  xeddsa_check.py sign PRIV MSG        -> signature hex (deterministic nonce = SHA-512(priv || msg))
"""
import hashlib
import sys

import xeddsa
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

P = 2**255 - 19


def edwards_from_montgomery(pub: bytes, sign_bit: int) -> bytes:
    u = int.from_bytes(pub, "little") & ((1 << 255) - 1)
    y = (u - 1) * pow(u + 1, P - 2, P) % P
    enc = bytearray(y.to_bytes(32, "little"))
    enc[31] |= sign_bit
    return bytes(enc)


def verify(pub: bytes, msg: bytes, sig: bytes) -> bool:
    if len(pub) != 32 or len(sig) != 64:
        return False
    sign_bit = sig[63] & 0x80
    plain = sig[:63] + bytes([sig[63] & 0x7F])
    by_xeddsa = xeddsa.ed25519_verify(plain, xeddsa.curve25519_pub_to_ed25519_pub(pub, bool(sign_bit)), msg)
    try:
        Ed25519PublicKey.from_public_bytes(edwards_from_montgomery(pub, sign_bit)).verify(plain, msg)
        by_cryptography = True
    except (InvalidSignature, ValueError):
        by_cryptography = False
    if by_xeddsa != by_cryptography:
        raise SystemExit("the two independent verifiers disagree")
    return by_xeddsa


def sign(priv: bytes, msg: bytes) -> bytes:
    clamped = bytearray(priv)
    clamped[0] &= 248
    clamped[31] &= 127
    clamped[31] |= 64
    clamped = bytes(clamped)
    nonce = hashlib.sha512(clamped + msg).digest()
    sig = bytearray(xeddsa.ed25519_priv_sign(clamped, msg, nonce))
    # libsignal form: the Edwards sign bit of A travels in the top bit of sig[63].
    sig[63] |= xeddsa.priv_to_ed25519_pub(clamped)[31] & 0x80
    return bytes(sig)


def main(argv):
    if len(argv) == 5 and argv[1] == "verify":
        pub, msg, sig = (bytes.fromhex(a) for a in argv[2:])
        print("valid" if verify(pub, msg, sig) else "invalid")
    elif len(argv) == 4 and argv[1] == "sign":
        priv, msg = (bytes.fromhex(a) for a in argv[2:])
        print(sign(priv, msg).hex())
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
