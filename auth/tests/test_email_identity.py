"""One address is one account, however its characters are encoded (NFKC, then lower case)."""

import pytest
from httpx import AsyncClient


def fullwidth(text: str) -> str:
    """`text` in full-width forms (U+FF01..U+FF5E), as some keyboards type it."""
    return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in text)


SIGNUP = "/api/users/signup"
SIGNIN = "/api/users/signin"


async def sign_up(client: AsyncClient, email: str):
    return await client.post(SIGNUP, json={"email": email, "password": "password"})


@pytest.mark.parametrize(
    ("first", "second", "stored"),
    [
        # Full-width letters fold to ASCII.
        (fullwidth("test") + "@example.com", "test@example.com", "test@example.com"),
        ("TEST@EXAMPLE.COM", fullwidth("test@example.com"), "test@example.com"),
        # A decomposed "é" (e + combining acute) and the composed one are one letter.
        ("jose\u0301@example.com", "jos\u00e9@example.com", "jos\u00e9@example.com"),
        ("JOSE\u0301@example.com", "jos\u00e9@example.com", "jos\u00e9@example.com"),
    ],
    ids=["fullwidth-local", "fullwidth-all", "decomposed-accent", "upper-decomposed"],
)
async def test_equivalent_spellings_of_one_address_make_one_account(client, first, second, stored):
    created = await sign_up(client, first)
    assert created.status_code == 201, created.text
    assert created.json()["email"] == stored

    again = await sign_up(client, second)

    assert again.status_code == 400
    assert again.json() == {"errors": [{"message": "Email in use"}]}


async def test_sign_in_with_another_spelling_finds_the_account(client):
    await sign_up(client, "jos\u00e9@example.com")
    client.cookies.clear()

    response = await client.post(
        SIGNIN, json={"email": fullwidth("JOSE") + "\u0301@example.com", "password": "password"}
    )

    assert response.status_code == 200, response.text
    assert response.json()["email"] == "jos\u00e9@example.com"
