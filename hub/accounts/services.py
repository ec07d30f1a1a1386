from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.utils import timezone

from hub.accounts.models import ApiKey, User
from hub.catalog.api_prepared import PreparedValuesQuery

logger = logging.getLogger(__name__)

KEY_PREFIX = "mw_"
ALL_SCOPES = [choice.value for choice in ApiKey.Scope]


def _hash_secret(secret: str) -> str:
    # Secrets are 32 random bytes, so a plain SHA-256 is enough: there is
    # nothing to brute-force, unlike a password.
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(frozen=True)
class IssuedKey:
    api_key: ApiKey
    plaintext: str


def api_key_create(*, user: User, name: str, scopes: list[str] | None = None) -> IssuedKey:
    scopes = list(dict.fromkeys(scopes or ["read", "download"]))
    unknown = [s for s in scopes if s not in ALL_SCOPES]
    if unknown:
        raise ValueError(f"unknown scopes: {', '.join(unknown)}; allowed: {', '.join(ALL_SCOPES)}")
    if not name.strip():
        raise ValueError("name must not be empty")
    prefix = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    with transaction.atomic():
        key = ApiKey.objects.create(
            user=user, name=name.strip()[:100], prefix=prefix, secret_hash=_hash_secret(secret), scopes=scopes
        )
    return IssuedKey(api_key=key, plaintext=f"{KEY_PREFIX}{prefix}_{secret}")


def api_key_revoke(*, api_key: ApiKey) -> None:
    if api_key.revoked_at is None:
        ApiKey.objects.filter(pk=api_key.pk, revoked_at__isnull=True).update(revoked_at=timezone.now())
        api_key.refresh_from_db(fields=["revoked_at"])


class InvalidApiKey(Exception):
    pass


_KEY_FIELDS = tuple(f.attname for f in ApiKey._meta.concrete_fields)
_USER_FIELDS = tuple(f.attname for f in User._meta.concrete_fields)
# Every API-key request starts with this lookup, so it runs as a prepared
# statement: compiling the joined query with the ORM each time cost more than
# the rest of a cached request.
_KEY_BY_PREFIX = PreparedValuesQuery(
    "mw_api_key_by_prefix",
    lambda prefix: ApiKey.objects.filter(prefix=prefix).values(*_KEY_FIELDS, *(f"user__{n}" for n in _USER_FIELDS)),
    (str,),
    json_fields=("scopes",),
)


def api_key_from_rows(rows: list) -> ApiKey | None:
    """The key (with its user) from the rows of `api_key_lookup_call`."""
    if not rows:
        return None
    row = rows[0]
    key = ApiKey.from_db("default", _KEY_FIELDS, [row[n] for n in _KEY_FIELDS])
    key.user = User.from_db("default", _USER_FIELDS, [row[f"user__{n}"] for n in _USER_FIELDS])
    return key


def api_key_split(plaintext: str) -> tuple[str, str]:
    """(prefix, secret) of a plaintext key, or InvalidApiKey if it cannot be one."""
    if not plaintext.startswith(KEY_PREFIX) or plaintext.count("_") < 2:
        raise InvalidApiKey("malformed API key")
    prefix, _, secret = plaintext[len(KEY_PREFIX):].partition("_")
    return prefix, secret


def api_key_lookup_call(prefix: str) -> tuple[PreparedValuesQuery, tuple[str]]:
    """The key lookup as a call for `rows_many`, so it can share a round trip with what the request needs next."""
    return _KEY_BY_PREFIX, (prefix,)


# prefix -> user id of keys that authenticated in this process. A key never
# changes owner, so a request can guess its user before the key is checked and
# fetch the user's rows in the same round trip; the guess is verified after.
_KEY_USERS: dict[str, int] = {}
_KEY_USERS_MAX = 4096


def api_key_user_guess(prefix: str) -> int | None:
    return _KEY_USERS.get(prefix)


def api_key_check(key: ApiKey | None, secret: str) -> ApiKey:
    """Accept `key` (from the lookup by prefix) for `secret`, or raise InvalidApiKey with a reason."""
    if key is None or not hmac.compare_digest(key.secret_hash, _hash_secret(secret)):
        raise InvalidApiKey("unknown API key")
    if key.revoked_at is not None:
        raise InvalidApiKey("API key has been revoked")
    if not key.user.is_active:
        raise InvalidApiKey("account is disabled")
    now = timezone.now()
    # Touch last_used_at at most once a minute so hot keys don't write per request.
    if key.last_used_at is None or (now - key.last_used_at).total_seconds() > 60:
        ApiKey.objects.filter(pk=key.pk).update(last_used_at=now)
        key.last_used_at = now
    if _KEY_USERS.get(key.prefix) != key.user_id:
        if len(_KEY_USERS) >= _KEY_USERS_MAX:
            _KEY_USERS.clear()
        _KEY_USERS[key.prefix] = key.user_id
    return key


def api_key_authenticate(plaintext: str) -> ApiKey:
    """Return the active key for `plaintext`, or raise InvalidApiKey with a reason."""
    prefix, secret = api_key_split(plaintext)
    return api_key_check(api_key_from_rows(_KEY_BY_PREFIX.rows(prefix)), secret)


def user_create(*, username: str, password: str, email: str = "") -> User:
    with transaction.atomic():
        return User.objects.create_user(username=username, password=password, email=email)


def user_email_change(*, user: User, email: str) -> User:
    """Set the address password-reset emails go to; an empty one means no reset by email."""
    email = User.objects.normalize_email(email.strip())
    with transaction.atomic():
        User.objects.filter(pk=user.pk).update(email=email)
    user.email = email
    return user


def user_password_change(*, user: User, password: str) -> User:
    """Set a new password (already validated by the caller's form). Other sessions of the user end with it."""
    with transaction.atomic():
        user.set_password(password)
        user.save(update_fields=["password"])
    return user


def password_reset_claim(*, email: str) -> bool:
    """Whether a reset email may go to `email` now: one per address per
    PASSWORD_RESET_EMAIL_INTERVAL seconds, so the public form cannot flood an inbox."""
    interval = settings.PASSWORD_RESET_EMAIL_INTERVAL
    if interval <= 0:
        return True
    key = "accounts:password-reset:" + hashlib.sha256(email.strip().lower().encode()).hexdigest()
    try:
        return bool(cache.add(key, 1, timeout=interval))
    except Exception:  # an unreachable cache must not lock everyone out of their account
        logger.exception("password reset throttle: cache unavailable; sending anyway")
        return True


def account_browsing_level_set(*, user: User, level: int, reveal_blurred: bool | None = None) -> User:
    """The highest NSFW level a viewer wants to see (1 PG, 2 PG-13, 4 R, 8 X), and whether a click reveals the rest."""
    from hub.catalog.nsfw import NsfwLevel

    if level not in NsfwLevel.values:
        raise ValueError("the browsing level must be 1 (PG), 2 (PG-13), 4 (R) or 8 (X)")
    fields = {"browsing_level": int(level)}
    if reveal_blurred is not None:
        fields["reveal_blurred"] = bool(reveal_blurred)
    with transaction.atomic():
        User.objects.filter(pk=user.pk).update(**fields)
    for name, value in fields.items():
        setattr(user, name, value)
    return user
