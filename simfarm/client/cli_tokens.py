"""``simfarm hash-token``: make a bearer token and the hashed entry the gateway stores."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import click
from pydantic import ValidationError

from simfarm.common.tokens import TokenEntry, hash_token, new_token


@click.command("hash-token")
@click.option("--user", required=True, help="user name the token's jobs belong to")
@click.option("--admin", is_flag=True, help="the token sees and cancels every user's jobs")
@click.option("--worker", is_flag=True,
              help="a worker's token (SIMFARM_TOKEN of workers): blobs and results only")
@click.option("--stdin", "from_stdin", is_flag=True,
              help="hash the token read from standard input instead of making a new one")
@click.option("--pbkdf2", is_flag=True,
              help="salted slow hash (for tokens people chose themselves)")
@click.option("--group", "groups", multiple=True,
              help="a group of the user (repeatable); accounts list groups that may charge them")
@click.option("--account", default=None, help="the account the user's jobs charge by default")
def hash_token_command(user: str, admin: bool, worker: bool, from_stdin: bool, pbkdf2: bool,
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
    if admin and worker:
        raise click.ClickException("a token is either --admin or --worker, not both")
    try:
        entry = TokenEntry(user=user, hash=hash_token(token, slow=pbkdf2), admin=admin,
                           worker=worker, groups=list(groups), account=account)
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
    if entry.worker:
        click.echo("worker = true")
    if entry.groups:
        click.echo(f"groups = {json.dumps(entry.groups)}")
    if entry.account:
        click.echo(f'account = "{entry.account}"')
    click.echo("")
    click.echo("# or in the environment (a JSON list; add one object per token):")
    click.echo(f"SIMFARM_AUTH_TOKENS='{json.dumps([entry.model_dump(exclude_defaults=True)])}'")


@click.command("redis-users")
@click.option("--acl-file", "acl_path", type=click.Path(dir_okay=False), required=True,
              help="where to write the Redis ACL file (0600; point redis.conf's aclfile at it)")
@click.option("--host", default="127.0.0.1", show_default=True, help="Redis host in the URLs")
@click.option("--port", default=6379, show_default=True, help="Redis port in the URLs")
@click.option("--prefix", default="simfarm:", show_default=True, help="simfarm's key_prefix")
def redis_users_command(acl_path: str, host: str, port: int, prefix: str) -> None:
    """Write a Redis ACL file with fresh passwords for the default user and the gateway,
    worker and dispatcher roles; print the SIMFARM_REDIS_URL of each role.

    The file stores only SHA-256 digests of the passwords; the URLs are shown once.
    """
    from simfarm.common.redis_acl import ROLES, acl_file, new_password, with_credentials

    passwords = {name: new_password() for name in ("default", *ROLES)}
    path = Path(acl_path)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(acl_file(passwords, prefix))
    base = f"redis://{host}:{port}/0"
    click.echo(f"# wrote {path}; in redis.conf: aclfile {path.resolve()}")
    click.echo("# SIMFARM_REDIS_URL of each service (shown once, not stored):")
    for name in ("gateway", "dispatcher", "worker", "default"):
        what = {"gateway": "gateway host", "dispatcher": "workers that may lead dispatch",
                "worker": "other workers (with SIMFARM_WORKER_DISPATCH=false)",
                "default": "operators only (every right)"}[name]
        click.echo(f"{name:10s} {with_credentials(base, name, passwords[name])}   # {what}")
