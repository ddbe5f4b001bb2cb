"""Masker: a secret is hidden in every form it can take in output, and nothing else is."""

from __future__ import annotations

import base64
import string

from hypothesis import given
from hypothesis import strategies as st

from tempeh_tui.engine.secrets import Masker

TOKEN = "hunter2-very-secret"


def test_a_token_base64_encoded_after_two_other_bytes_is_masked() -> None:
    encoded = base64.b64encode(b"ab" + TOKEN.encode()).decode()  # printf 'ab%s' "$TOK" | base64

    masked = Masker([TOKEN]).mask(f"payload {encoded}")

    assert masked == "payload YWJ***"


def test_http_basic_auth_credentials_do_not_show_the_token() -> None:
    credentials = base64.b64encode(f"user:{TOKEN}".encode()).decode()

    masked = Masker([TOKEN]).mask(f"Authorization: Basic {credentials}")

    assert masked == "Authorization: Basic dXNlcjp***"


def test_a_base64url_token_followed_by_more_data_is_masked() -> None:
    token = "tok?>>~secret-value"  # its base64 has '+' and '/', its base64url '-' and '_'
    encoded = base64.urlsafe_b64encode(b"x" + token.encode() + b'","exp":1}').decode()

    masked = Masker([token]).mask(encoded)

    assert "***" in masked
    assert base64.urlsafe_b64encode(b"x" + token.encode()).decode()[2:20] not in masked


@given(
    token=st.text(string.ascii_letters + string.digits + "-_.:/+=!", min_size=8, max_size=40),
    before=st.binary(max_size=7),
    after=st.binary(max_size=7),
    urlsafe=st.booleans(),
)
def test_every_character_made_of_the_secret_alone_is_hidden_at_any_alignment(
    token: str, before: bytes, after: bytes, urlsafe: bool
) -> None:
    encode = base64.urlsafe_b64encode if urlsafe else base64.b64encode
    encoded = encode(before + token.encode() + after).decode()

    masked = Masker([token]).mask(encoded)

    # What is left either side carries bits of the other bytes (or is their encoding).
    left, _, right = masked.partition("***")
    assert len(left) <= -(-8 * len(before) // 6)
    assert len(right) <= len(encoded) - 8 * (len(before) + len(token)) // 6


@given(st.lists(st.binary(min_size=1, max_size=200), min_size=1, max_size=20))
def test_base64_of_other_data_is_left_alone(blobs: list[bytes]) -> None:
    masker = Masker([TOKEN, "ghp_Zq8sLx0PvW3nKd71", "s3cr3t-db-password!"])
    text = " ".join(base64.b64encode(blob).decode() for blob in blobs if TOKEN.encode() not in blob)

    assert masker.mask(text) == text


def test_ordinary_log_lines_are_not_masked() -> None:
    masker = Masker([TOKEN, "abc", "s3cr3t"])  # short secrets: only whole forms are masked
    lines = [
        "GET /api/v1/orders 200 took 12ms user=alice region=eu-1",
        "Authorization: Basic dXNlcjpwYXNz",
        "deploy hunter2 very secret, hunter-very-secret2",
        "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
        "eGFiY2RlZg== YWJj",  # base64 of "xabcdef" (too few characters of "abc") and of "abc"
    ]

    assert [masker.mask(line) for line in lines] == [*lines[:4], "eGFiY2RlZg== ***"]


def test_plain_and_url_encoded_forms_are_still_masked() -> None:
    token = "p@ss word/with:stuff"
    masker = Masker([token])

    assert masker.mask(f"a {token} b") == "a *** b"
    assert masker.mask("u=p%40ss%20word%2Fwith%3Astuff&x=1") == "u=***&x=1"
    assert masker.mask("u=p%40ss+word%2Fwith%3Astuff") == "u=***"
    assert masker.mask("u=p%40ss%20word%2fwith%3astuff") == "u=***"  # lower-case escapes
    assert masker.mask("u=p%40ss%20word%2Fwith%3astuff") == "u=***"  # and mixed
    assert masker.mask(base64.b64encode(token.encode()).decode()) == "***="  # padding stays


def _own_characters(token: bytes) -> list[str]:
    """The base64 characters made of `token`'s bits alone, at each alignment, both alphabets."""
    parts = []
    for encode in (base64.b64encode, base64.urlsafe_b64encode):
        for before in range(3):
            encoded = encode(bytes(before) + token).decode()
            parts.append(encoded[-(-8 * before // 6) : 8 * (before + len(token)) // 6])
    return parts


def _wrapped(data: bytes, width: int) -> list[str]:
    encoded = base64.b64encode(data).decode()
    return [encoded[i : i + width] for i in range(0, len(encoded), width)]


@given(
    token=st.text(string.ascii_letters + string.digits + "-_.:/+=!", min_size=8, max_size=120),
    before=st.binary(max_size=200),
    after=st.binary(max_size=40),
    width=st.sampled_from([76, 64]),
)
def test_a_secret_in_base64_wrapped_over_lines_is_masked_on_every_line(
    token: str, before: bytes, after: bytes, width: int
) -> None:
    """`base64` wraps at 76 columns, PEM at 64: each line is masked on its own, and no eight
    characters made of the secret alone are left on any (fewer carry too few of its bits)."""
    masker = Masker([token])
    own = _own_characters(token.encode())

    for line in (masker.mask(line) for line in _wrapped(before + token.encode() + after, width)):
        for piece in line.split("***"):
            windows = {piece[i : i + 8] for i in range(len(piece) - 7)}
            assert not any(window in part for window in windows for part in own), line


def test_wrapped_base64_of_a_key_shows_only_what_is_not_the_secret() -> None:
    key = "sk_live_51Hx9f2Kq8LmN0pQrStUvWxYz0123456789abcdefGHIJKLmnopQRSTuvwx"
    lines = _wrapped(b'{"user":"deploy","key":"' + key.encode() + b'","ttl":3600}', 76)

    masked = [Masker([key]).mask(line) for line in lines]

    assert len(lines) == 2
    assert masked[0].startswith(lines[0][:30])  # the JSON around it is still readable
    assert masked[0].endswith("***")
    assert masked[1].startswith("***")
    assert masked[1].endswith(lines[1][-10:])
