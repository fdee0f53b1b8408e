"""``simfarm hash-token``: make a bearer token and the hashed entry the gateway stores."""

from __future__ import annotations

import json
import sys

import click
from pydantic import ValidationError

from simfarm.common.tokens import TokenEntry, hash_token, new_token


@click.command("hash-token")
@click.option("--user", required=True, help="user name the token's jobs belong to")
@click.option("--admin", is_flag=True, help="the token sees and cancels every user's jobs")
@click.option("--stdin", "from_stdin", is_flag=True,
              help="hash the token read from standard input instead of making a new one")
@click.option("--pbkdf2", is_flag=True,
              help="salted slow hash (for tokens people chose themselves)")
@click.option("--group", "groups", multiple=True,
              help="a group of the user (repeatable); accounts list groups that may charge them")
@click.option("--account", default=None, help="the account the user's jobs charge by default")
def hash_token_command(user: str, admin: bool, from_stdin: bool, pbkdf2: bool,
                       groups: tuple[str, ...], account: str | None) -> None:
    """Print a new token (or hash one from stdin) and its configuration entry.

    Only the hash goes into the gateway's configuration; give the token to the user,
    who sets it as SIMFARM_TOKEN.
    """
    if from_stdin:
        token = sys.stdin.readline().strip()
        if not token:
            raise click.ClickException("no token on standard input")
    else:
        token = new_token()
    try:
        entry = TokenEntry(user=user, hash=hash_token(token, slow=pbkdf2), admin=admin,
                           groups=list(groups), account=account)
    except ValidationError as exc:
        raise click.ClickException(exc.errors()[0]["msg"]) from exc
    if not from_stdin:
        click.echo(f"token for {user} (shown once, not stored): {token}")
        click.echo("")
    click.echo("# simfarm.toml of the gateway:")
    click.echo("[[auth_tokens]]")
    click.echo(f'user = "{entry.user}"')
    click.echo(f'hash = "{entry.hash}"')
    click.echo(f"admin = {'true' if entry.admin else 'false'}")
    if entry.groups:
        click.echo(f"groups = {json.dumps(entry.groups)}")
    if entry.account:
        click.echo(f'account = "{entry.account}"')
    click.echo("")
    click.echo("# or in the environment (a JSON list; add one object per token):")
    click.echo(f"SIMFARM_AUTH_TOKENS='{json.dumps([entry.model_dump(exclude_defaults=True)])}'")
