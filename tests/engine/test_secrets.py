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
    assert masker.mask(base64.b64encode(token.encode()).decode()) == "***="  # padding stays
