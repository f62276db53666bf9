from typing import Annotated

from fastapi import Depends, Request

from auth.passwords import Passwords
from auth.repository import Users


def get_users(request: Request) -> Users:
    users: Users = request.state.users
    return users


def get_passwords(request: Request) -> Passwords:
    passwords: Passwords = request.state.passwords
    return passwords


UsersDep = Annotated[Users, Depends(get_users)]
PasswordsDep = Annotated[Passwords, Depends(get_passwords)]
