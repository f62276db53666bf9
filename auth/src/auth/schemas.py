from typing import Annotated

from email_validator import EmailNotValidError, validate_email
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field


def _trim(value: object) -> object:
    return value.strip() if isinstance(value, str) else value


def _password_length(value: str) -> str:
    if not 4 <= len(value) <= 20:
        raise ValueError("Password must be between 4 and 20 characters")
    return value


def _non_empty(value: str) -> str:
    if not value:
        raise ValueError("You must supply a password")
    return value


def _email(value: str) -> str:
    try:
        validate_email(value, check_deliverability=False)
    except EmailNotValidError:
        raise ValueError("Email must be valid") from None
    return value.lower()


Email = Annotated[str, BeforeValidator(_trim), AfterValidator(_email)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True)


class SignUp(_Body):
    email: Email
    password: Annotated[str, BeforeValidator(_trim), AfterValidator(_password_length)]


class SignIn(_Body):
    email: Email
    password: Annotated[str, BeforeValidator(_trim), AfterValidator(_non_empty)]


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
