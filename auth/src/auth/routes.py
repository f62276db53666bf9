from fastapi import APIRouter, Response

from auth.deps import ClientAddress, LimitsDep, PasswordsDep, UsersDep
from auth.repository import EmailInUse, session_version
from auth.schemas import CurrentUserResponse, SessionUser, SignIn, SignUp, UserPublic
from ticketing_common.auth import CurrentUser, SessionsDep
from ticketing_common.errors import BadRequestError
from ticketing_common.service import ServiceRoute

router = APIRouter(prefix="/api/users", tags=["users"], route_class=ServiceRoute)


@router.post("/signup", status_code=201)
async def sign_up(
    body: SignUp,
    response: Response,
    users: UsersDep,
    passwords: PasswordsDep,
    sessions: SessionsDep,
    limits: LimitsDep,
    address: ClientAddress,
) -> UserPublic:
    """Create an account and sign in. Every sign-up counts against its email's and its
    address's budgets (429 once one is spent)."""
    async with limits.attempt(*limits.sign_up(body.email, address)):
        try:
            user = await users.create(body.email, await passwords.hash(body.password))
        except EmailInUse:
            raise BadRequestError("Email in use") from None
    sessions.set_cookie(response, str(user["_id"]), user["email"], session_version(user))
    return UserPublic(id=str(user["_id"]), email=user["email"])


@router.post("/signin")
async def sign_in(
    body: SignIn,
    response: Response,
    users: UsersDep,
    passwords: PasswordsDep,
    sessions: SessionsDep,
    limits: LimitsDep,
    address: ClientAddress,
) -> UserPublic:
    """Sign in with email and password. A failure counts against the email's and the
    address's budgets; once one is spent every sign-in there is 429 (a right password
    too) until its window ends. A success is no failure and clears the email's count."""
    budgets = limits.sign_in(body.email, address)
    async with limits.attempt(*budgets) as attempt:
        user = await users.by_email(body.email)
        # Verified even for an unknown email, so both failures look and take the same.
        verified = await passwords.verify(user["password"] if user else None, body.password)
        if user is None or not verified:
            raise BadRequestError("Invalid credentials")
    await attempt.forgive(clear=[budgets.email])
    sessions.set_cookie(response, str(user["_id"]), user["email"], session_version(user))
    return UserPublic(id=str(user["_id"]), email=user["email"])


@router.post("/signout")
async def sign_out(
    response: Response, user: CurrentUser, users: UsersDep, sessions: SessionsDep
) -> dict[str, object]:
    """Sign out: revoke the user's sessions (this token and every other one issued
    before it) and clear the cookie."""
    if user is not None:
        await users.revoke_sessions(user.id, user.ver)
    sessions.clear_cookie(response)
    return {}


@router.get("/currentuser")
async def show_current_user(user: CurrentUser, users: UsersDep) -> CurrentUserResponse:
    """The signed-in user, or null (also for a revoked session or an unknown user)."""
    if user is not None:
        stored = await users.by_id(user.id)
        if stored is None or session_version(stored) != user.ver:
            user = None
    return CurrentUserResponse(
        current_user=SessionUser(**user.model_dump(exclude={"ver"})) if user else None
    )
