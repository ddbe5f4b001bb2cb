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


def test_a_line_of_megabytes_keeps_its_first_pieces_and_says_how_much_was_not_kept() -> None:
    from tempeh_tui.engine.shell_process import MAX_LINE_PIECES

    splitter = LineSplitter()
    size = (MAX_LINE_PIECES + 10) * MAX_LINE_BYTES + 5
    lines: list[str] = []
    data = b"x" * size + b"\nnext\n"
    for start in range(0, len(data), MAX_LINE_BYTES):  # as reads from a pipe come
        lines.extend(splitter.feed(data[start : start + MAX_LINE_BYTES]))
    lines.extend(splitter.flush())

    kept = MAX_LINE_PIECES * MAX_LINE_BYTES
    assert [len(line) for line in lines[:MAX_LINE_PIECES]] == [MAX_LINE_BYTES] * MAX_LINE_PIECES
    assert lines[MAX_LINE_PIECES:] == [
        f"[tempeh: {size - kept:,} more bytes of this line were not kept]",
        "next",
    ]


def test_an_endless_line_at_the_end_of_the_stream_is_bounded_too() -> None:
    from tempeh_tui.engine.shell_process import MAX_LINE_PIECES

    splitter = LineSplitter()
    lines: list[str] = []
    for _ in range(MAX_LINE_PIECES + 4):
        lines.extend(splitter.feed(b"\r" + b"y" * (MAX_LINE_BYTES - 1)))  # a progress bar
    lines.extend(splitter.flush())
    assert len(lines) == MAX_LINE_PIECES + 1
    dropped = (MAX_LINE_PIECES + 4) * MAX_LINE_BYTES - MAX_LINE_PIECES * MAX_LINE_BYTES
    assert lines[-1] == f"[tempeh: {dropped:,} more bytes of this line were not kept]"


def test_the_marker_counts_one_byte_as_one() -> None:
    from tempeh_tui.engine.shell_process import MAX_LINE_PIECES

    lines = LineSplitter().feed(b"z" * (MAX_LINE_PIECES * MAX_LINE_BYTES + 1) + b"\n")
    assert lines[-1] == "[tempeh: 1 more byte of this line was not kept]"
