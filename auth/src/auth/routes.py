from fastapi import APIRouter, Response

from auth.deps import AccountsDep, ClientAddress
from auth.models import User
from auth.schemas import CurrentUserResponse, SessionUser, SignIn, SignUp, UserPublic
from ticketing_common.auth import CurrentUser, SessionCodec, SessionsDep
from ticketing_common.http.routing import ServiceRoute

router = APIRouter(prefix="/api/users", tags=["users"], route_class=ServiceRoute)


def _signed_in(response: Response, sessions: SessionCodec, user: User) -> UserPublic:
    """Set the session cookie for `user` and answer with the user."""
    sessions.set_cookie(response, user.id, user.email, user.session_version)
    return UserPublic(id=user.id, email=user.email)


@router.post("/signup", status_code=201)
async def sign_up(
    body: SignUp,
    response: Response,
    accounts: AccountsDep,
    sessions: SessionsDep,
    address: ClientAddress,
) -> UserPublic:
    """Create an account and sign in (429 once the email's or the address's sign-ups are
    spent)."""
    user = await accounts.sign_up(body.email, body.password, address)
    return _signed_in(response, sessions, user)


@router.post("/signin")
async def sign_in(
    body: SignIn,
    response: Response,
    accounts: AccountsDep,
    sessions: SessionsDep,
    address: ClientAddress,
) -> UserPublic:
    """Sign in with email and password (429 once the email's or the address's failures
    are spent, a right password too)."""
    user = await accounts.sign_in(body.email, body.password, address)
    return _signed_in(response, sessions, user)


@router.post("/signout")
async def sign_out(
    response: Response, session: CurrentUser, accounts: AccountsDep, sessions: SessionsDep
) -> dict[str, object]:
    """Sign out: revoke the user's sessions (this token and every other one issued
    before it) and clear the cookie."""
    await accounts.sign_out(session)
    sessions.clear_cookie(response)
    return {}


@router.get("/currentuser")
async def show_current_user(session: CurrentUser, accounts: AccountsDep) -> CurrentUserResponse:
    """The signed-in user, or null (also for a revoked session or an unknown user)."""
    current = await accounts.current(session)
    return CurrentUserResponse(
        current_user=SessionUser(**current.model_dump(exclude={"ver"})) if current else None
    )
