"""Who pays for a job: accounts (projects, cost centres), their members and their shares.

An account is a ``[[accounts]]`` table in simfarm.toml (or ``SIMFARM_ACCOUNTS`` as JSON):
a name, its shares of the farm, and its members — user names and token groups
(``groups`` of an ``auth_tokens`` entry). Every job carries an account. A job that names
none gets its owner's default: the ``account`` of the owner's token entry, else the first
account (in configuration order) the owner belongs to, else ``default_account``, which a
user who belongs to no account may always charge. A user may charge only the accounts
they belong to; admins any. With no accounts configured every job charges
``default_account`` and the farm behaves as before. docs/operations.md has an example.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field, field_validator

from simfarm.common.names import check_name, unique_names
from simfarm.common.tokens import TokenEntry

ACCOUNT_NAME = re.compile(r"^[A-Za-z0-9_.\-]{1,64}$")
#: a member entry that admits every user
EVERYONE = "*"


def check_account_name(value: str) -> str:
    """``value`` if it is a valid account name, else ValueError."""
    return check_name(value, ACCOUNT_NAME, "account name")


class Account(BaseModel):
    """One account (an ``[[accounts]]`` table): who may charge it and its share."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(description="the name jobs give in `account`")
    shares: float = Field(default=1.0, gt=0, le=1_000_000,
                          description="its shares of the farm, relative to the other accounts'")
    users: tuple[str, ...] = Field(default=(), description="user names that may charge it "
                                   "('*': everyone)")
    groups: tuple[str, ...] = Field(default=(), description="token groups whose users may "
                                    "charge it")
    user_shares: dict[str, float] = Field(
        default_factory=dict,
        description="shares of users inside the account (default 1 each)")
    description: str = Field(default="", max_length=200, description="what it is for")

    @field_validator("name")
    @classmethod
    def _check_name(cls, value: str) -> str:
        return check_account_name(value)

    @field_validator("user_shares")
    @classmethod
    def _check_user_shares(cls, value: dict[str, float]) -> dict[str, float]:
        for user, shares in value.items():
            if not 0 < shares <= 1_000_000:
                raise ValueError(f"user_shares of {user!r} must be > 0 and <= 1000000")
        return value

    def share_of(self, user: str) -> float:
        """The shares of ``user`` inside this account."""
        return self.user_shares.get(user, 1.0)


def check_unique_accounts(accounts: Iterable[Account]) -> list[Account]:
    """``accounts`` as a list, or ValueError naming an account defined twice."""
    return unique_names(accounts, "account")


@dataclass(frozen=True)
class Refusal:
    """Why a job may not charge an account: the HTTP status (403 not a member, 422 no
    such account) and the reason in words."""

    status: int
    reason: str


class AccountBook:
    """The farm's accounts and who belongs to which, built once from the settings."""

    def __init__(self, accounts: Sequence[Account], default_account: str,
                 tokens: Sequence[TokenEntry] = ()) -> None:
        self.default_account = default_account
        self._accounts = {a.name: a for a in accounts}
        if default_account and default_account not in self._accounts:
            # the implicit account of the users no account lists
            self._accounts[default_account] = Account(
                name=default_account, description="users who belong to no account")
        self._groups: dict[str, set[str]] = {}
        self._token_default: dict[str, str] = {}
        self._admins: set[str] = set()
        for entry in tokens:
            self._groups.setdefault(entry.user, set()).update(entry.groups)
            if entry.admin:
                self._admins.add(entry.user)
            if entry.account and entry.user not in self._token_default:
                self._token_default[entry.user] = entry.account

    @property
    def accounts(self) -> list[Account]:
        """Every account, in configuration order (the implicit default one last)."""
        return list(self._accounts.values())

    def get(self, name: str) -> Account | None:
        """The account called ``name``, or None."""
        return self._accounts.get(name)

    def groups_of(self, user: str | None) -> set[str]:
        """The token groups of ``user`` (over all their tokens)."""
        return set(self._groups.get(user or "", ()))

    def is_member(self, user: str | None, account: Account) -> bool:
        """Whether ``user`` is listed in ``account`` (by name, by group or as ``*``)."""
        if EVERYONE in account.users or (user is not None and user in account.users):
            return True
        return bool(self.groups_of(user) & set(account.groups))

    def accounts_of(self, user: str | None) -> list[Account]:
        """The accounts ``user`` may charge, in configuration order: those that list them
        (by name or group) first, then those open to everyone; a user listed by none may
        charge the default account too."""
        listed = [a for a in self._accounts.values()
                  if EVERYONE not in a.users and self.is_member(user, a)]
        everyone = [a for a in self._accounts.values() if EVERYONE in a.users]
        default = self._accounts.get(self.default_account)
        if not listed and default is not None and default not in everyone:
            everyone.append(default)
        return listed + everyone

    def default_for(self, user: str | None) -> str | None:
        """The account a job of ``user`` charges when it names none: the token entry's
        ``account``, else the first account that lists the user, else the default account
        (None: the user may charge no account)."""
        chosen = self._token_default.get(user or "")
        if chosen is not None:
            return chosen
        mine = self.accounts_of(user)
        listed = [a for a in mine if EVERYONE not in a.users and a.name != self.default_account]
        if listed:
            return listed[0].name
        if any(a.name == self.default_account for a in mine):
            return self.default_account
        return mine[0].name if mine else None

    def refusal(self, user: str | None, account: str, admin: bool) -> Refusal | None:
        """Why ``user`` may not charge ``account`` (None: they may). Admins may charge any
        account that exists."""
        found = self._accounts.get(account)
        if found is None:
            names = ", ".join(sorted(self._accounts)) or "none"
            return Refusal(422, f"no such account {account!r} (accounts: {names})")
        if admin or found in self.accounts_of(user):
            return None
        mine = ", ".join(a.name for a in self.accounts_of(user)) or "none"
        return Refusal(403, f"{user or 'you'} may not charge account {account!r} "
                            f"(your accounts: {mine})")

    def check_token_defaults(self) -> None:
        """ValueError when a token entry's default account does not exist or its user may
        not charge it (a configuration mistake found at start, not at the first submit)."""
        for user, account in self._token_default.items():
            refused = self.refusal(user, account, admin=user in self._admins)
            if refused is not None:
                raise ValueError(f"auth_tokens: the default account of {user}: "
                                 f"{refused.reason}")
