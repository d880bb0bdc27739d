"""The command line explains itself: a bare `s4mi` prints help, `--version` answers, and every option of every
command says what it does and its default (or that it is required)."""

from __future__ import annotations

import argparse

import pytest

from napari_s4mi import __version__
from napari_s4mi.cli import build_parser, main


def all_parsers(parser: argparse.ArgumentParser, path: str = "s4mi"):
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from all_parsers(sub, f"{path} {name}")


def test_bare_s4mi_prints_help(capsys):
    assert main([]) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: s4mi") and "train" in out and "predict" in out


def test_version(capsys):
    with pytest.raises(SystemExit) as stop:
        main(["--version"])
    assert stop.value.code == 0 and capsys.readouterr().out.strip() == f"s4mi {__version__}"


def test_every_option_has_a_description_and_its_default():
    missing = []
    for path, parser in all_parsers(build_parser()):
        for action in parser._actions:
            if isinstance(action, argparse._HelpAction | argparse._VersionAction | argparse._SubParsersAction):
                continue
            text = action.help or ""
            described = len(text) > 10
            defaulted = "default" in text or "required" in text or (action.option_strings == [] and action.nargs)
            if not (described and defaulted):
                missing.append(f"{path} {'/'.join(action.option_strings) or action.dest}: {text!r}")
    assert not missing, "options without a description or a default:\n" + "\n".join(missing)


def test_required_options_are_marked():
    for path, parser in all_parsers(build_parser()):
        for action in parser._actions:
            if action.required and action.option_strings:
                assert "(required)" in (action.help or ""), f"{path} {action.option_strings}"
