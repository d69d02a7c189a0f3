"""Payload encryption codec (placeholder until keys are configured)."""

from __future__ import annotations

from temporalio.converter import PayloadCodec


def codec_from_env() -> PayloadCodec | None:
    return None
