#!/usr/bin/python3
"""Attach a sigstore signature to an image in a registry, as
`skopeo copy --sign-by-sigstore-private-key` does with
`use-sigstore-attachments: true`.

Debian 12's skopeo 1.9.3 has the option, but Debian built it with sigstore
disabled ("Debian-local change: sigstore disabled"), and there is no cosign
in Debian 12. So the tests sign with this script, which follows
containers/image step by step:
- the key: sigstore-keygen.py's file, decrypted as signature/sigstore/copied.go
  loadPrivateKey does (scrypt, then NaCl secretbox, then PKCS#8);
- the payload: signature/internal/sigstore_payload.go (critical.type
  "cosign container image signature", docker-manifest-digest,
  docker-reference; optional.creator and optional.timestamp);
- the signature: ECDSA P-256 over SHA-256 of the payload, ASN.1 DER, base64
  in the layer annotation dev.cosignproject.cosign/signature;
- the attachment: docker/docker_image_dest.go
  putSignaturesToSigstoreAttachments: an OCI manifest tagged
  sha256-<hex>.sig, one layer per signature (media type
  application/vnd.dev.cosign.simplesigning.v1+json), appended to the
  attachment that is there already, with an OCI config whose rootfs lists
  the layers.

Usage: sigstore-sign.py KEY PASSPHRASE_FILE http://HOST:PORT REPO DIGEST IDENTITY [ATTACH_TO]
(plain HTTP and no authentication: the tests' registries.) ATTACH_TO, a
manifest digest, puts the signature of DIGEST beside another image, as an
attacker copying a real signature would.
"""
import base64
import hashlib
import json
import sys
import time
import urllib.error
import urllib.request

import nacl.secret
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

MIME = "application/vnd.dev.cosign.simplesigning.v1+json"
ANNOTATION = "dev.cosignproject.cosign/signature"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"


def load_key(path, passfile):
    with open(passfile, "rb") as f:
        passphrase = f.read().split(b"\n")[0]
    text = open(path).read()
    lines = text.strip().splitlines()
    if lines[0] not in ("-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----",
                        "-----BEGIN ENCRYPTED COSIGN PRIVATE KEY-----"):
        sys.exit(f"{path}: not an encrypted sigstore private key")
    doc = json.loads(base64.b64decode("".join(lines[1:-1])))
    assert doc["kdf"]["name"] == "scrypt" and doc["cipher"]["name"] == "nacl/secretbox"
    prm = doc["kdf"]["params"]
    secret = hashlib.scrypt(passphrase, salt=base64.b64decode(doc["kdf"]["salt"]),
                            n=prm["N"], r=prm["r"], p=prm["p"], maxmem=64 << 20, dklen=32)
    der = nacl.secret.SecretBox(secret).decrypt(base64.b64decode(doc["ciphertext"]),
                                                base64.b64decode(doc["cipher"]["nonce"]))
    return serialization.load_der_private_key(der, password=None)


def request(method, url, body=None, headers=None):
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    return urllib.request.urlopen(req)


def put_blob(base, repo, data):
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    r = request("POST", f"{base}/v2/{repo}/blobs/uploads/")
    loc = r.headers["Location"]
    if loc.startswith("/"):
        loc = base + loc
    sep = "&" if "?" in loc else "?"
    request("PUT", f"{loc}{sep}digest={digest}", data,
            {"Content-Type": "application/octet-stream"})
    return {"mediaType": None, "digest": digest, "size": len(data)}


def main():
    if len(sys.argv) not in (7, 8):
        sys.exit("usage: sigstore-sign.py KEY PASSPHRASE_FILE URL REPO DIGEST IDENTITY [ATTACH_TO]")
    key_path, passfile, base, repo, digest, identity = sys.argv[1:7]
    attach_to = sys.argv[7] if len(sys.argv) == 8 else digest
    key = load_key(key_path, passfile)
    payload = json.dumps({
        "critical": {
            "identity": {"docker-reference": identity},
            "image": {"docker-manifest-digest": digest},
            "type": "cosign container image signature",
        },
        "optional": {"creator": "syscontainer tests/sigstore-sign.py",
                     "timestamp": int(time.time())},
    }, separators=(",", ":")).encode()
    sig = key.sign(payload, ec.ECDSA(hashes.SHA256()))
    tag = attach_to.replace(":", "-", 1) + ".sig"
    manifest_url = f"{base}/v2/{repo}/manifests/{tag}"
    try:
        r = request("GET", manifest_url, headers={"Accept": OCI_MANIFEST})
        manifest = json.loads(r.read())
        cfg = json.loads(request("GET", f"{base}/v2/{repo}/blobs/{manifest['config']['digest']}").read())
    except urllib.error.HTTPError as e:
        if e.code != 404:
            raise
        manifest = {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": None, "layers": []}
        cfg = {"architecture": "", "os": "", "config": {}, "rootfs": {"type": "layers", "diff_ids": []}}
    layer = put_blob(base, repo, payload)
    layer["mediaType"] = MIME
    layer["annotations"] = {ANNOTATION: base64.b64encode(sig).decode()}
    manifest["layers"].append(layer)
    cfg["rootfs"]["diff_ids"].append(layer["digest"])
    c = put_blob(base, repo, json.dumps(cfg, separators=(",", ":")).encode())
    c["mediaType"] = OCI_CONFIG
    manifest["config"] = c
    request("PUT", manifest_url, json.dumps(manifest, separators=(",", ":")).encode(),
            {"Content-Type": OCI_MANIFEST})


if __name__ == "__main__":
    main()
