"""parse_outputs: the $TEMPEH_OUTPUT file format."""

from __future__ import annotations

import pytest

from tempeh_tui.engine.outputs import OutputFileError, parse_outputs


def test_key_value_lines_are_outputs() -> None:
    assert parse_outputs("version=1.4.2\nurl=http://x/?a=b\nempty=\n") == {
        "version": "1.4.2",
        "url": "http://x/?a=b",
        "empty": "",
    }


def test_a_heredoc_holds_a_multi_line_value() -> None:
    text = "notes<<EOF\nfirst\n\n  indented = kept\nEOF\nafter=1\n"
    assert parse_outputs(text) == {"notes": "first\n\n  indented = kept", "after": "1"}


def test_an_empty_heredoc_is_an_empty_value() -> None:
    assert parse_outputs("a<<END\nEND") == {"a": ""}


def test_later_keys_win_and_blank_lines_are_ignored() -> None:
    assert parse_outputs("a=1\n\n   \nb=2\na=3\n") == {"a": "3", "b": "2"}


def test_windows_line_endings_are_accepted() -> None:
    assert parse_outputs("a=1\r\nb<<X\r\nline\r\nX\r\n") == {"a": "1", "b": "line"}


def test_an_equals_sign_before_the_heredoc_marker_makes_a_plain_value() -> None:
    assert parse_outputs("cmd=cat <<EOF\n") == {"cmd": "cat <<EOF"}


def test_keys_may_hold_dots_and_dashes() -> None:
    assert parse_outputs("db.url-2=x\n_k=y") == {"db.url-2": "x", "_k": "y"}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a=1\njust text\n", "line 2: expected KEY=VALUE or KEY<<DELIMITER, got 'just text'"),
        ("a=1\nnotes<<EOF\nx\n", "line 2: 'notes<<EOF' is not closed by a line 'EOF'"),
        ("notes<<\nx\n", "line 1: 'notes<<' needs a delimiter after '<<'"),
        ("1abc=x", "line 1: '1abc' is not a valid output name"),
        ("has space=x", "line 1: 'has space' is not a valid output name"),
        ("=x", "line 1: '' is not a valid output name"),
    ],
)
def test_a_malformed_file_names_the_line(text: str, message: str) -> None:
    with pytest.raises(OutputFileError) as raised:
        parse_outputs(text)
    assert str(raised.value).startswith(message)
