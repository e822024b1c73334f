"""The one YAML reader: malformed or unreadable files name the file, line and column."""
from __future__ import annotations

import pytest

from pc_core.errors import ConfigError, PocketCoffeaError
from pc_core.yaml_reader import parse_yaml, read_yaml


def test_a_document_is_parsed(tmp_path):
    path = tmp_path / "ok.yaml"
    path.write_text("a: 1\nb: [x, 'y']\n")
    assert read_yaml(path, "test file") == {"a": 1, "b": ["x", "y"]}


def test_a_syntax_error_names_file_line_and_column_in_the_callers_error_type(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("a: 1\nb: [x, y\nc: 2\n")
    with pytest.raises(ConfigError) as info:
        read_yaml(path, "test file", ConfigError)
    message = str(info.value)
    assert message.startswith(f"test file {path}: malformed YAML at line ")
    line = int(message.split("at line ")[1].split(",")[0])
    assert line in (2, 3) and ", column " in message


def test_an_unreadable_file_is_named(tmp_path):
    with pytest.raises(PocketCoffeaError, match=rf"test file {tmp_path / 'missing.yaml'}: cannot read it"):
        read_yaml(tmp_path / "missing.yaml", "test file")
    (tmp_path / "binary.yaml").write_bytes(b"\xff\xfe\x00")
    with pytest.raises(PocketCoffeaError, match="cannot read it"):
        read_yaml(tmp_path / "binary.yaml", "test file")


def test_json_is_yaml():
    assert parse_yaml('{"a": [1, 2]}', "inline") == {"a": [1, 2]}
