#!/usr/bin/python3
"""Make a sigstore key pair in the format skopeo reads.

Debian 12's skopeo 1.9.3 signs with --sign-by-sigstore-private-key but has no
generate-sigstore-key, so the tests (cli/tests/trust.rs,
tests/system/test-trust.sh, bench/trust.sh) make their keys with this script.

Usage: sigstore-keygen.py PREFIX PASSPHRASE_FILE
Writes PREFIX.key (the private key) and PREFIX.pub (the public key, PEM).

The format is cosign's, as containers/image's signature/sigstore/copied.go
(marshalKeyPair, loadPrivateKey) writes and reads it: an ECDSA P-256 key as
PKCS#8 DER, encrypted as go-securesystemslib's encrypted.Encrypt does it
(scrypt N=32768 r=8 p=1 over a 32-byte salt, then NaCl secretbox with a
24-byte nonce), that JSON in a PEM block of type
"ENCRYPTED SIGSTORE PRIVATE KEY". Packages: Debian's python3-cryptography
(the key) and python3-nacl (secretbox); scrypt is hashlib's.
"""
import base64
import hashlib
import json
import os
import sys

import nacl.secret
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: sigstore-keygen.py PREFIX PASSPHRASE_FILE")
    prefix, passfile = sys.argv[1], sys.argv[2]
    with open(passfile, "rb") as f:
        # skopeo strips one trailing newline from --sign-passphrase-file.
        passphrase = f.read().rstrip(b"\n")
    key = ec.generate_private_key(ec.SECP256R1())
    der = key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    salt = os.urandom(32)
    n, r, p = 32768, 8, 1
    secret = hashlib.scrypt(passphrase, salt=salt, n=n, r=r, p=p, maxmem=64 << 20, dklen=32)
    nonce = os.urandom(nacl.secret.SecretBox.NONCE_SIZE)
    box = nacl.secret.SecretBox(secret).encrypt(der, nonce).ciphertext
    b64 = lambda b: base64.b64encode(b).decode()
    doc = {
        "kdf": {"name": "scrypt", "params": {"N": n, "r": r, "p": p}, "salt": b64(salt)},
        "cipher": {"name": "nacl/secretbox", "nonce": b64(nonce)},
        "ciphertext": b64(box),
    }
    body = base64.b64encode(json.dumps(doc, separators=(",", ":")).encode()).decode()
    lines = [body[i:i + 64] for i in range(0, len(body), 64)]
    pem = "-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\n" + "\n".join(lines) + \
        "\n-----END ENCRYPTED SIGSTORE PRIVATE KEY-----\n"
    pub = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    with open(prefix + ".key", "w") as f:
        os.fchmod(f.fileno(), 0o600)
        f.write(pem)
    with open(prefix + ".pub", "wb") as f:
        f.write(pub)


if __name__ == "__main__":
    main()
