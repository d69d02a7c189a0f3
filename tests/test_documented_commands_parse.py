"""Every command of the project's own programs that a page of the documentation shows is one its
program accepts: the same arguments go through the program's own parser (and, for the starter,
its input checks), without running anything. A flag renamed or removed in the code, or mistyped
in the docs, fails here, on every page, including those whose commands need a cluster
(`docs/deployment.md`) and so are not run end to end. The Operations commands are also run for
real (`tests/test_readme_commands.py`)."""

from __future__ import annotations

import argparse
import contextlib
import io
import re
import shlex
from typing import Callable

import pytest

from tests.readme import commands, pages, placeholders, sh_blocks


class Parsed(BaseException):
    """Raised in place of running a program once its parser accepted the arguments."""


def _program_main(words: list[str]) -> tuple[str, Callable[[list[str]], object], list[str]] | None:
    """(program, its main, its arguments) for a command line of one of the project's programs."""
    if words[:2] == ["python", "starter.py"]:
        import starter

        return "starter.py", starter.main, words[2:]
    if words[:2] == ["python", "worker.py"]:
        import worker

        return "worker.py", lambda argv: worker.parse_args(argv), words[2:]
    if words[:2] == ["python", "-m"] and len(words) > 2:
        module, argv = words[2], words[3:]
        if module == "webhook_receiver":
            from webhook_receiver.__main__ import main
        elif module == "codec_server":
            from codec_server.app import main
        elif module == "data_protection.keys":
            from data_protection.keys import main
        elif module == "onboarding_api":
            from onboarding_api.__main__ import main
        else:
            return None
        return module, main, argv
    return None


def documented_program_commands() -> list[tuple[str, str, int]]:
    """(page, command line, documented exit code) for every documented command of the project's
    own programs."""
    found = []
    for page in pages():
        for block in sh_blocks(page.read_text()):
            for command in commands(block):
                code = shlex.join(shlex.split(command.line, comments=True))
                code = re.sub(r"^(?:[A-Z_]+=\S+\s+)+", "", code)  # VARIABLE=value python ...
                if code.startswith(("python starter.py", "python worker.py", "python -m ")):
                    found.append((page.name, code, command.expected_exit))
    return found


DOCUMENTED = documented_program_commands()


def test_the_docs_show_the_programs_commands():
    programs = {_program_main(shlex.split(line))[0] for _, line, _ in DOCUMENTED if _program_main(shlex.split(line))}
    assert {"starter.py", "worker.py", "webhook_receiver", "codec_server", "data_protection.keys", "onboarding_api"} <= programs


@pytest.mark.parametrize("page,line,documented_exit", DOCUMENTED, ids=[f"{p}:{line[:60]}" for p, line, _ in DOCUMENTED])
def test_a_documented_command_is_accepted_by_its_program(page, line, documented_exit, monkeypatch):
    """A line documenting exit 2 (a usage error shown on purpose) must be refused instead."""
    words = shlex.split(line)
    program = _program_main(words)
    if program is None:
        return  # a module of the tooling (bench, demo, the sandbox): run by its own tests
    name, main, argv = program
    original = argparse.ArgumentParser.parse_args

    def parse_then_stop(self, args=None, namespace=None):
        result = original(self, args, namespace)
        if name == "starter.py" and not placeholders(line):
            import starter

            starter.check_args(result)  # the starter's input checks: an email, an id, a file
        raise Parsed(result)

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", parse_then_stop)
    refused = io.StringIO()
    if documented_exit == 2:
        with contextlib.redirect_stderr(refused), pytest.raises(SystemExit) if name != "starter.py" else contextlib.nullcontext():
            assert main(argv) == 2
        return
    with contextlib.redirect_stderr(refused), pytest.raises(Parsed):
        main(argv)
