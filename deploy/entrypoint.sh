#!/bin/sh
# The image's entrypoint: one image, one process per container, named by the first argument.
# Every further argument goes to that process, after the defaults below (a later --host or --port wins).
set -eu

usage() {
    echo "usage: entrypoint.sh worker|receiver|codec-server|api [flags of that process]" >&2
}

command="${1:-}"
if [ "$#" -gt 0 ]; then
    shift
fi

case "$command" in
    worker)
        exec python -m worker "$@"
        ;;
    receiver)
        # Inside a container the receiver must listen beyond loopback for its Service.
        exec python -m webhook_receiver --host 0.0.0.0 --port 8081 "$@"
        ;;
    codec-server)
        # Off loopback the codec server refuses to start without ONBOARDING_CODEC_TOKEN.
        exec python -m codec_server --host 0.0.0.0 --port 8888 "$@"
        ;;
    api)
        # The HTTP API backends call (docs/http-api.md); beyond loopback for its Service.
        exec python -m onboarding_api --host 0.0.0.0 --port 8082 "$@"
        ;;
    *)
        usage
        exit 2
        ;;
esac
