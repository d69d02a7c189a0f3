"""The data converter's type adapters are built once per process, not once per workflow
instance (`runtime/converter.py`), and it writes and reads exactly what Temporal's pydantic
converter does."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Annotated

from temporalio.contrib.pydantic import pydantic_data_converter

from contracts.messages import OnboardingInput, OnboardingState
from runtime.converter import PYDANTIC_DATA_CONVERTER, SharedAdaptersPayloadConverter, shared_type_adapter

VALUES = [
    OnboardingInput(external_id="ext-1", email="ada@example.com"),
    OnboardingState(external_id="ext-1"),
    {"a": [1, 2]},
    None,
    b"raw",
    datetime(2026, 12, 6, tzinfo=timezone.utc),
]
HINTS = [OnboardingInput, OnboardingState, dict, type(None), bytes, datetime]


def test_it_writes_and_reads_what_temporals_pydantic_converter_does():
    ours, theirs = PYDANTIC_DATA_CONVERTER.payload_converter, pydantic_data_converter.payload_converter
    payloads = ours.to_payloads(VALUES)
    assert payloads == theirs.to_payloads(VALUES)
    assert ours.from_payloads(payloads, HINTS) == theirs.from_payloads(payloads, HINTS) == VALUES


def test_every_converter_instance_uses_the_same_adapter_for_a_type():
    # A worker makes a converter per workflow instance: two of them build one adapter.
    payload = PYDANTIC_DATA_CONVERTER.payload_converter.to_payloads([{"a": 1}])
    shared_type_adapter.cache_clear()
    for _ in range(2):
        assert SharedAdaptersPayloadConverter().from_payloads(payload, [dict]) == [{"a": 1}]
    info = shared_type_adapter.cache_info()
    assert (info.currsize, info.misses, info.hits) == (1, 1, 1)


def test_an_unhashable_type_hint_is_read_without_the_cache():
    hint = Annotated[int, []]  # metadata that cannot be hashed
    payload = PYDANTIC_DATA_CONVERTER.payload_converter.to_payloads([7])
    shared_type_adapter.cache_clear()
    assert SharedAdaptersPayloadConverter().from_payloads(payload, [hint]) == [7]
    assert shared_type_adapter.cache_info().currsize == 0
