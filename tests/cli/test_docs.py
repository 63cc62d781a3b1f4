"""The README documents the command line as it is (in the manner of sqlite-utils' test_docs): every command
and subcommand, and every option of each, appears in its "Command line" section. No server needed."""

from __future__ import annotations

import argparse
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from pgembed.cli import build_parser

README = Path(__file__).resolve().parents[2] / "README.md"
SHARED = {"-h", "--help", "--json", "--dsn", "--data-dir"}  # documented once, for every command


def command_line_section() -> str:
    text = README.read_text(encoding="utf-8")
    match = re.search(r"^## Command line\n(.*?)(?=^## )", text, flags=re.S | re.M)
    assert match, "README.md has no '## Command line' section"
    return match.group(1)


def commands(parser: argparse.ArgumentParser, prefix: str = "pgembed") -> Iterator[tuple[str, argparse.ArgumentParser]]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield f"{prefix} {name}", sub
                yield from commands(sub, f"{prefix} {name}")


def documented(section: str, command: str) -> Iterator[str]:
    """The lines that document `command`: each line starting with it, and the indented lines that continue it."""
    inside = False
    for line in section.splitlines():
        if re.match(rf"{re.escape(command)}(\s|$)", line):
            inside = True
        elif not line[:1].isspace():
            inside = False
        if inside:
            yield line


ALL = list(commands(build_parser()))


@pytest.mark.parametrize(("command", "parser"), ALL, ids=[c for c, _ in ALL])
def test_every_command_and_option_is_in_the_readme(command: str, parser: argparse.ArgumentParser) -> None:
    section = command_line_section()
    assert re.search(rf"^{re.escape(command)}\b", section, flags=re.M), f"README lacks a line for `{command}`"
    options = {o for a in parser._actions for o in a.option_strings if o.startswith("--")} - SHARED
    block = "\n".join(documented(section, command))
    missing = sorted(o for o in options if not re.search(rf"{re.escape(o)}\b", block))
    assert not missing, f"README's lines for `{command}` do not mention {missing}"


def test_the_shared_options_are_documented() -> None:
    section = command_line_section()
    for option in SHARED - {"-h", "--help"}:
        assert option in section
