#!/bin/sh
# A Python 3.11 base image made from Debian's packages, for building the image where no container
# registry can be reached (Debian's and PyPI's package servers can). As root, with debootstrap
# and podman installed:
#
#   sh deploy/debian-python-base.sh [image name]
#   podman build --build-arg PYTHON_IMAGE=localhost/debian-python:3.11-bookworm -t iron-onboarding .
set -eu
image="${1:-localhost/debian-python:3.11-bookworm}"
rootfs="$(mktemp -d)"
trap 'rm -rf "$rootfs"' EXIT

# bookworm's python3 is 3.11; python-is-python3 gives it the name `python` the Dockerfile uses.
debootstrap --variant=minbase --include=python3,python3-venv,python-is-python3,ca-certificates bookworm "$rootfs"
# This machine's CA bundle, so apt and pip inside the build trust what the host trusts (a TLS
# proxy's own CA included); pip reads it through PIP_CERT.
cp /etc/ssl/certs/ca-certificates.crt "$rootfs/etc/ssl/certs/ca-certificates.crt"
tar -C "$rootfs" -c . | podman import --change "ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt" - "$image"
