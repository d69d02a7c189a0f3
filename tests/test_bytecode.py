"""The worker's start-up check for workflow modules that the sandbox would compile at every import."""

from __future__ import annotations

import importlib.util
import os
import py_compile
import sys

import pytest

from runtime.bytecode import uncompiled_sources


@pytest.fixture
def workflow_class(tmp_path, monkeypatch):
    source = tmp_path / "some_workflow_module.py"
    source.write_text("class SomeWorkflow:\n    pass\n")
    spec = importlib.util.spec_from_file_location("some_workflow_module", source)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "some_workflow_module", module)
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    spec.loader.exec_module(module)  # with writes off: no .pyc beside it
    return module.SomeWorkflow, source


def test_a_module_without_bytecode_is_named_while_python_may_not_write_it(workflow_class):
    cls, source = workflow_class
    assert not os.path.exists(importlib.util.cache_from_source(str(source)))
    assert uncompiled_sources([cls, cls]) == [str(source)]


def test_compiled_bytecode_satisfies_it_until_the_source_changes(workflow_class):
    cls, source = workflow_class
    cached = py_compile.compile(str(source), cfile=importlib.util.cache_from_source(str(source)))
    assert uncompiled_sources([cls]) == []
    later = os.path.getmtime(cached) + 10
    os.utime(source, (later, later))  # edited after it was compiled
    assert uncompiled_sources([cls]) == [str(source)]


def test_nothing_is_named_when_python_writes_bytecode_itself(workflow_class, monkeypatch):
    cls, _ = workflow_class
    monkeypatch.setattr(sys, "dont_write_bytecode", False)
    assert uncompiled_sources([cls]) == []
