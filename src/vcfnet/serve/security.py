"""Passwords (argon2id), server-side sessions, CSRF tokens, API keys and the login rate limit.

A session cookie holds a random token; the ``sessions`` table holds only its SHA-256, so a copy
of the database opens no session. Each session has its own CSRF token, which every state-changing
request made with the cookie must echo (form field ``csrf_token`` or header ``X-CSRF-Token``).
API keys are random 256-bit strings sent as ``Authorization: Bearer``; only their SHA-256 is kept
(argon2 is for guessable secrets such as passwords; a random key needs no slow hash).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import secrets
from functools import lru_cache

from argon2 import PasswordHasher, profiles
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from vcfnet.serve.models import ApiKey, AuditLog, LoginSession, User, utcnow
from vcfnet.serve.settings import Settings

log = logging.getLogger(__name__)

MIN_PASSWORD_LENGTH = 12
API_KEY_PREFIX = "vcf_"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
LOGIN_FAILED = "login.failed"


class WeakPasswordError(ValueError):
    """A new password is too short."""


@lru_cache(maxsize=4)
def password_hasher(profile: str) -> PasswordHasher:
    """An argon2id hasher with the parameters of ``argon2.profiles.<profile>``."""
    return PasswordHasher.from_parameters(getattr(profiles, profile))


def check_password_strength(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise WeakPasswordError(
            f"the password has {len(password)} characters; use at least {MIN_PASSWORD_LENGTH}"
        )


def hash_password(password: str, settings: Settings) -> str:
    check_password_strength(password)
    return password_hasher(settings.argon2_profile).hash(password)


def verify_password(password_hash: str, password: str, settings: Settings) -> bool:
    try:
        return password_hasher(settings.argon2_profile).verify(password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def random_password() -> str:
    """A 20-character random password (for ``--demo`` and ``users add --random``)."""
    return secrets.token_urlsafe(15)


# ------------------------------------------------------------------------------------- sessions


def create_session(db: Session, user: User, settings: Settings) -> tuple[str, LoginSession]:
    """(cookie token, row) of a new session for ``user``; the caller commits."""
    token = secrets.token_urlsafe(32)
    row = LoginSession(
        id=token_digest(token),
        user_id=user.id,
        csrf_token=secrets.token_urlsafe(32),
        expires_at=utcnow() + dt.timedelta(hours=settings.session_hours),
    )
    db.add(row)
    return token, row


def session_for_token(db: Session, token: str | None) -> LoginSession | None:
    """The live session of a cookie token (not revoked, not expired, user active), else None."""
    if not token:
        return None
    row = db.get(LoginSession, token_digest(token))
    if row is None or row.revoked_at is not None or row.expires_at <= utcnow():
        return None
    if not row.user.is_active:
        return None
    return row


def revoke_sessions(db: Session, user_id: int, *, except_id: str | None = None) -> int:
    """Revoke every live session of a user (logout everywhere, password change, disable)."""
    stmt = (
        update(LoginSession)
        .where(LoginSession.user_id == user_id, LoginSession.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )
    if except_id is not None:
        stmt = stmt.where(LoginSession.id != except_id)
    return db.execute(stmt).rowcount or 0


def csrf_matches(expected: str, given: str | None) -> bool:
    return bool(given) and secrets.compare_digest(expected.encode(), str(given).encode())


# ------------------------------------------------------------------------------------- API keys


def create_api_key(db: Session, user: User, name: str) -> tuple[str, ApiKey]:
    """(the key, shown once; its row) for ``user``; the caller commits."""
    key = API_KEY_PREFIX + secrets.token_urlsafe(32)
    row = ApiKey(user_id=user.id, name=name[:64], prefix=key[:12], key_hash=token_digest(key))
    db.add(row)
    return key, row


def user_for_api_key(db: Session, key: str) -> User | None:
    row = db.scalar(select(ApiKey).where(ApiKey.key_hash == token_digest(key)))
    if row is None or row.revoked_at is not None or not row.user.is_active:
        return None
    row.last_used_at = utcnow()
    return row.user


# ------------------------------------------------------------------------------- login limiting


#: failed logins from one address (many users behind one hospital NAT) allowed per user's limit
ADDRESS_FACTOR = 4


def login_blocked(db: Session, username: str, client: str, settings: Settings) -> bool:
    """Whether too many logins failed recently for this user name, or from this address.

    Counted from the audit log, so every worker and machine sharing the database agrees.
    """
    since = utcnow() - dt.timedelta(minutes=settings.login_window_minutes)
    recent = select(func.count(AuditLog.id)).where(
        AuditLog.action == LOGIN_FAILED, AuditLog.at >= since
    )
    by_name = db.scalar(recent.where(AuditLog.detail == login_failure_detail(username))) or 0
    by_address = db.scalar(recent.where(AuditLog.client == client)) or 0
    limit = settings.login_max_failures
    return by_name >= limit or by_address >= ADDRESS_FACTOR * limit


def login_failure_detail(username: str) -> str:
    return f"username={username[:64]}"


def authenticate(db: Session, username: str, password: str, settings: Settings) -> User | None:
    """The active user with this name and password, else None (same work either way)."""
    user = db.scalar(select(User).where(User.username == username))
    if user is None:
        verify_password(_DUMMY_HASH[settings.argon2_profile], password, settings)
        return None
    if not verify_password(user.password_hash, password, settings) or not user.is_active:
        return None
    return user


class _DummyHashes(dict):
    """A hash per profile to verify against for unknown users (equal timing)."""

    def __missing__(self, profile: str) -> str:
        value = password_hasher(profile).hash(secrets.token_hex(16))
        self[profile] = value
        return value


_DUMMY_HASH = _DummyHashes()
