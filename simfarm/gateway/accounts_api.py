"""``GET /api/v1/accounts``: the accounts jobs may charge, their shares and members."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify
from pydantic import BaseModel, Field

from simfarm.gateway.auth import current_user
from simfarm.gateway.openapi import document
from simfarm.gateway.services import services

bp = Blueprint("accounts", __name__, url_prefix="/api/v1")


class AccountOut(BaseModel):
    """One account as the API shows it."""

    name: str
    description: str = ""
    shares: float = Field(description="its shares, relative to the other accounts'")
    share: float = Field(description="its fraction of the farm: shares / all accounts' shares")
    users: list[str] = Field(description="users listed as members ('*': everyone)")
    groups: list[str] = Field(description="token groups whose users are members")
    user_shares: dict[str, float] = Field(description="shares of users inside it (default 1)")
    mine: bool = Field(description="the caller may charge it")
    default: bool = Field(description="the caller's jobs charge it when they name no account")


class AccountListOut(BaseModel):
    """Every account, and the caller's default."""

    accounts: list[AccountOut]
    default_account: str | None = Field(description="the caller's default account")


@bp.get("/accounts")
@document(tags=["accounts"], responses={200: AccountListOut})
def list_accounts() -> Response:
    """The farm's accounts: shares, members, and which the caller may charge."""
    book = services().accounts
    caller = current_user()
    mine = {a.name for a in book.accounts_of(caller.user)}
    default = book.default_for(caller.user)
    total = sum(a.shares for a in book.accounts) or 1.0
    rows = [AccountOut(
        name=a.name, description=a.description, shares=a.shares, share=a.shares / total,
        users=list(a.users), groups=list(a.groups), user_shares=dict(a.user_shares),
        mine=caller.admin or a.name in mine,
        default=a.name == default,
    ).model_dump(mode="json") for a in book.accounts]
    return jsonify({"accounts": rows, "default_account": default})
