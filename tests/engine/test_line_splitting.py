"""How pipe output becomes log lines, read by read (the executor's private splitter)."""

from __future__ import annotations

from tempeh_tui.engine.shell_process import MAX_LINE_BYTES, LineSplitter


def split(*reads: bytes) -> list[str]:
    splitter = LineSplitter()
    lines = [line for data in reads for line in splitter.feed(data)]
    return lines + splitter.flush()


def test_lines_and_partial_lines_across_reads() -> None:
    assert split(b"a\nb", b"c\nd") == ["a", "bc", "d"]


def test_a_character_split_between_reads_stays_whole() -> None:
    assert split("é\nx".encode()[:1], "é\nx".encode()[1:]) == ["é", "x"]


def test_crlf_split_between_reads_is_one_ending() -> None:
    assert split(b"a\r", b"\nb\r\n") == ["a", "b"]


def test_a_long_line_is_cut_at_character_boundaries() -> None:
    text = "€" * MAX_LINE_BYTES  # three bytes each
    lines = split(text.encode()[:MAX_LINE_BYTES], text.encode()[MAX_LINE_BYTES:] + b"\nend\n")

    assert "".join(lines[:-1]) == text
    assert all(len(line.encode()) <= MAX_LINE_BYTES for line in lines)
    assert "\ufffd" not in "".join(lines)
    assert lines[-1] == "end"


def test_a_long_first_line_and_short_ones_in_one_read() -> None:
    head = b"x" * (MAX_LINE_BYTES - 10)
    lines = split(head, b"y" * 20 + b"\nshort\r\nlines\n")

    assert [len(line) for line in lines] == [MAX_LINE_BYTES, 10, 5, 5]
    assert lines[2:] == ["short", "lines"]
