import unicodedata
from typing import Annotated

from email_validator import EmailNotValidError, validate_email
from pydantic import AfterValidator, BaseModel, Field

from ticketing_common.schemas import RequestBody, Trimmed


def _password_length(value: str) -> str:
    if not 4 <= len(value) <= 20:
        raise ValueError("Password must be between 4 and 20 characters")
    return value


def _non_empty(value: str) -> str:
    if not value:
        raise ValueError("You must supply a password")
    return value


def _email(value: str) -> str:
    # NFKC first: full-width, composed and decomposed spellings of one address are one
    # account (compatibility forms fold to their plain letters before lower-casing).
    value = unicodedata.normalize("NFKC", value).strip()
    try:
        validate_email(value, check_deliverability=False)
    except EmailNotValidError:
        raise ValueError("Email must be valid") from None
    return unicodedata.normalize("NFKC", value.lower())


Email = Annotated[str, Trimmed, AfterValidator(_email)]


class SignUp(RequestBody):
    email: Email
    password: Annotated[str, Trimmed, AfterValidator(_password_length)]


class SignIn(RequestBody):
    email: Email
    password: Annotated[str, Trimmed, AfterValidator(_non_empty)]


class UserPublic(BaseModel):
    id: str
    email: str


class SessionUser(BaseModel):
    id: str
    email: str
    iat: int
    exp: int


class CurrentUserResponse(BaseModel):
    current_user: SessionUser | None = Field(serialization_alias="currentUser")
