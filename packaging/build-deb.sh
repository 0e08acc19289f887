#!/bin/bash
# Build the Debian package: packaging/build-deb.sh  ->  target/deb/syscontainer_*.deb
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p target
trap 'rm -f debian' EXIT
rm -f debian; ln -s packaging/debian debian
# -d: cargo comes from rustup, not from a Debian package
dpkg-buildpackage -us -uc -b -d >target/dpkg-buildpackage.log 2>&1 || { tail -40 target/dpkg-buildpackage.log; exit 1; }
mkdir -p target/deb
mv ../syscontainer_*.deb target/deb/
rm -f ../syscontainer_*.buildinfo ../syscontainer_*.changes ../syscontainer-dbgsym_*.deb
ls target/deb/*.deb
