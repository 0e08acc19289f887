#!/usr/bin/env python3
"""Seed inputs of the `dockertar` fuzz target: small, valid docker-archives
in the layouts the real tools write, built with python's tarfile (the
fixture images are too large to be good seeds).

Usage: fuzz/make-dockertar-seeds.py DIR   (writes DIR/seed-*.tar)
"""
import gzip
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile

MTIME = 1700000000
# Pad archives to 1 kB, not 10 kB: smaller seeds, and both are valid tars.
tarfile.RECORDSIZE = 1024


def sha(b):
    return hashlib.sha256(b).hexdigest()


def tar_bytes(members, fmt=tarfile.GNU_FORMAT):
    """members: (name, kind, data-or-target, mode, extra pax headers)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as t:
        for name, kind, data, mode, pax in members:
            ti = tarfile.TarInfo(name)
            ti.mtime = MTIME
            ti.mode = mode
            ti.pax_headers = pax or {}
            if kind == "dir":
                ti.type = tarfile.DIRTYPE
                t.addfile(ti)
            elif kind == "sym":
                ti.type = tarfile.SYMTYPE
                ti.linkname = data
                t.addfile(ti)
            elif kind == "hard":
                ti.type = tarfile.LNKTYPE
                ti.linkname = data
                t.addfile(ti)
            else:
                ti.size = len(data)
                t.addfile(ti, io.BytesIO(data))
    return buf.getvalue()


BASE = [
    ("bin", "dir", None, 0o755, None),
    ("bin/busybox", "file", b"#!/bin/sh\necho busybox\n", 0o755, None),
    ("bin/sh", "sym", "busybox", 0o777, None),
    ("bin/ls", "hard", "bin/busybox", 0o755, None),
    ("etc", "dir", None, 0o755, None),
    ("etc/hostname", "file", b"fuzz\n", 0o644, None),
    ("etc/opt", "dir", None, 0o755, None),
    ("etc/opt/a", "file", b"a\n", 0o600, None),
    ("exports", "dir", None, 0o755, None),
    ("exports/config.json.template", "file",
     b'{"process":{"args":["/bin/sh","-c","$CMD"]},"root":{"path":"rootfs"}}\n', 0o644, None),
    ("exports/manifest.json", "file",
     b'{"version":"1.0","defaultValues":{"CMD":"sleep 1"}}\n', 0o644, None),
    ("usr/bin/suid", "file", b"x", 0o4755, None),
]

UPPER = [
    ("etc", "dir", None, 0o755, None),
    ("etc/.wh.hostname", "file", b"", 0o644, None),
    ("etc/opt", "dir", None, 0o755, None),
    ("etc/opt/.wh..wh..opq", "file", b"", 0o644, None),
    ("etc/opt/b", "file", b"b\n", 0o644, None),
    ("var/" + "d" * 40 + "/" + "long-name-" * 12, "file", b"long\n", 0o644, None),
    ("var/x", "file", b"xattr\n", 0o644, {"SCHILY.xattr.user.fuzz": "1"}),
]


def config(diff_ids):
    return json.dumps({
        "architecture": "amd64", "os": "linux", "created": "2023-11-14T22:13:20Z",
        "config": {"Cmd": ["/bin/sh"], "Env": ["PATH=/bin"]},
        "rootfs": {"type": "layers", "diff_ids": ["sha256:" + d for d in diff_ids]},
    }, separators=(",", ":")).encode()


def write(path, members):
    with open(path, "wb") as f:
        f.write(tar_bytes(members))


def skopeo_layout(out, layers, tags):
    """skopeo copy ... docker-archive: HEX.tar layers, HEX.json config."""
    diff = [sha(l) for l in layers]
    cfg = config(diff)
    m = [{"Config": sha(cfg) + ".json", "RepoTags": tags, "Layers": [d + ".tar" for d in diff]}]
    members = [(d + ".tar", "file", l, 0o644, None) for d, l in zip(diff, layers)]
    members += [(sha(cfg) + ".json", "file", cfg, 0o644, None),
                ("manifest.json", "file", json.dumps(m).encode(), 0o644, None),
                ("repositories", "file", b"{}", 0o644, None)]
    write(out, members)


def legacy_layout(out, layers):
    """docker save before 25: ID/layer.tar, a repeated layer as a symlink,
    no RepoTags, a ./ prefix."""
    diff = [sha(l) for l in layers]
    cfg = config(diff + [diff[0]])
    ids = ["%064x" % (i + 1) for i in range(len(layers) + 1)]
    members = []
    for i, l in zip(ids, layers):
        members += [("./" + i, "dir", None, 0o755, None),
                    ("./" + i + "/VERSION", "file", b"1.0", 0o644, None),
                    ("./" + i + "/layer.tar", "file", l, 0o644, None)]
    members += [(ids[-1], "dir", None, 0o755, None),
                (ids[-1] + "/layer.tar", "sym", "../" + ids[0] + "/layer.tar", 0o777, None)]
    m = [{"Config": sha(cfg) + ".json", "RepoTags": None,
          "Layers": [i + "/layer.tar" for i in ids]}]
    members += [(sha(cfg) + ".json", "file", cfg, 0o644, None),
                ("manifest.json", "file", json.dumps(m).encode(), 0o644, None)]
    write(out, members)


def oci_layout(out, layers, compress):
    """docker save since 25: an OCI layout with manifest.json beside it,
    compressed blobs under blobs/sha256/."""
    blobs = [compress(l) for l in layers]
    diff = [sha(l) for l in layers]
    cfg = config(diff)
    members = [("blobs", "dir", None, 0o755, None), ("blobs/sha256", "dir", None, 0o755, None)]
    members += [("blobs/sha256/" + sha(b), "file", b, 0o644, None) for b in blobs]
    members += [("blobs/sha256/" + sha(cfg), "file", cfg, 0o644, None),
                ("oci-layout", "file", b'{"imageLayoutVersion":"1.0.0"}', 0o644, None),
                ("index.json", "file", b'{"schemaVersion":2,"manifests":[]}', 0o644, None)]
    m = [{"Config": "blobs/sha256/" + sha(cfg), "RepoTags": ["example.com/fuzz/oci:v1"],
          "Layers": ["blobs/sha256/" + sha(b) for b in blobs]}]
    members.append(("manifest.json", "file", json.dumps(m).encode(), 0o644, None))
    write(out, members)


def gz(b):
    return gzip.compress(b, mtime=0)


def zst(b):
    return subprocess.run(["zstd", "-q", "-c", "-3"], input=b, check=True,
                          stdout=subprocess.PIPE).stdout


def main():
    d = sys.argv[1]
    os.makedirs(d, exist_ok=True)
    base = tar_bytes(BASE)
    upper = tar_bytes(UPPER, tarfile.PAX_FORMAT)
    skopeo_layout(os.path.join(d, "seed-skopeo.tar"), [base], ["localhost/sctest/tiny:latest"])
    skopeo_layout(os.path.join(d, "seed-skopeo-2layers.tar"), [base, upper], ["fuzz:1"])
    skopeo_layout(os.path.join(d, "seed-empty.tar"), [], [])
    legacy_layout(os.path.join(d, "seed-legacy.tar"), [base, upper])
    oci_layout(os.path.join(d, "seed-oci-gzip.tar"), [base, upper], gz)
    if shutil.which("zstd"):
        oci_layout(os.path.join(d, "seed-oci-zstd.tar"), [base], zst)


if __name__ == "__main__":
    main()
