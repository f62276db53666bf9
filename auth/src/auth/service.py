"""The rules of accounts and sessions: sign-up, sign-in and its limits, revocation.

The routes parse and answer (the cookie is theirs); everything decided about a user is
decided here, on the `User` records the repository returns.
"""

from __future__ import annotations

from auth.limits import Limits
from auth.models import User
from auth.passwords import Passwords
from auth.repository import EmailInUse, Users
from ticketing_common.auth import UserPayload
from ticketing_common.errors import BadRequestError


class Accounts:
    def __init__(self, users: Users, passwords: Passwords, limits: Limits) -> None:
        self.users = users
        self.passwords = passwords
        self.limits = limits

    async def sign_up(self, email: str, password: str, address: str) -> User:
        """A new account. Every sign-up counts against its email's and its address's
        budgets (429 once one is spent), a refused one too."""
        async with self.limits.attempt(*self.limits.sign_up(email, address)):
            try:
                return await self.users.create(email, await self.passwords.hash(password))
            except EmailInUse:
                raise BadRequestError("Email in use") from None

    async def sign_in(self, email: str, password: str, address: str) -> User:
        """The user whose password this is. A failure counts against the email's and the
        address's budgets; once one is spent every sign-in there is 429 (a right password
        too) until its window ends. A success is no failure and clears the email's count."""
        budgets = self.limits.sign_in(email, address)
        async with self.limits.attempt(*budgets) as attempt:
            user = await self.users.by_email(email)
            # Verified even for an unknown email, so both failures look and take the same.
            stored = user.password_hash if user else None
            verified = await self.passwords.verify(stored, password)
            if user is None or not verified:
                raise BadRequestError("Invalid credentials")
        await attempt.forgive(clear=[budgets.email])
        return user

    async def sign_out(self, session: UserPayload | None) -> None:
        """Revoke the session and every other one issued before it (a signed-out caller,
        or a session already revoked, changes nothing)."""
        if session is not None:
            await self.users.raise_session_version(session.id, session.ver)

    async def current(self, session: UserPayload | None) -> UserPayload | None:
        """The session while it stands: None for a revoked session or an unknown user."""
        if session is None:
            return None
        user = await self.users.by_id(session.id)
        if user is None or user.session_version != session.ver:
            return None
        return session
