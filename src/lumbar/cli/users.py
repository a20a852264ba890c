"""Commands for staff accounts: adding users, their access, and their credentials.

``lumbar user add|list|grant|revoke|countersign|grants|deactivate|activate``
manage who works on the trial and who may see arms; ``lumbar user passwd``,
``lumbar user totp ...`` and ``lumbar user token ...`` manage the credentials
that sign a person in to the web app and the API. On the command line, with the
database and its key at hand, you are the operator: ``--as`` names whose behalf
you act on, and every audit record says it came from this command line.
"""

from __future__ import annotations

from typing import Annotated

import typer

from lumbar.cli._common import app, echo_table
from lumbar.cli.trial import As, Db, KeyFile, open_trial
from lumbar.operations import GRANTS, PERMISSIONS, ROLES

__all__ = ["token_app", "totp_app", "user_app"]

user_app = typer.Typer(
    help="Staff: add and list users, their access to arms, and their credentials.",
    no_args_is_help=True,
    rich_markup_mode=None,
)
totp_app = typer.Typer(
    help="Your second factor (TOTP) for signing in with a password.",
    no_args_is_help=True,
    rich_markup_mode=None,
)
token_app = typer.Typer(
    help="API tokens: scoped to some permissions, expiring, revocable.",
    no_args_is_help=True,
    rich_markup_mode=None,
)
app.add_typer(user_app, name="user")
user_app.add_typer(totp_app, name="totp")
user_app.add_typer(token_app, name="token")

DEFAULT_TOKEN_DAYS = 90


# ---------------------------------------------------------------- users and access


@user_app.command("add")
def user_add(
    username: Annotated[str, typer.Argument(help="The new user's name.")],
    role: Annotated[str, typer.Option(help="One of: " + ", ".join(ROLES) + ".")],
    site: Annotated[
        list[str] | None, typer.Option(help="A site code (repeat for several).")
    ] = None,
    all_sites: Annotated[bool, typer.Option(help="Works at every site.")] = False,
    unblinded: Annotated[
        bool | None,
        typer.Option(
            "--unblinded/--blinded",
            help="Whether the user sees arms (default: only therapists do).",
        ),
    ] = None,
    reason: Annotated[
        str | None,
        typer.Option(help="Why the user must see arms (required for an unblinded user)."),
    ] = None,
    db: Db = None,
    actor: As = None,
    key_file: KeyFile = None,
) -> None:
    """Add a member of staff with a role, at some sites or all.

    An account that sees arms (therapists, or --unblinded) is created only with a
    --reason, kept as its grant and listed by 'lumbar user grants'.
    """
    member = open_trial(db, actor, key_file).add_staff(
        username, role, site or [], all_sites=all_sites, unblinded=unblinded, reason=reason
    )
    blinding = "unblinded" if member.unblinded else "blinded"
    typer.echo(
        f"added {member.username}: {member.role}, {blinding}, sites {', '.join(member.sites)}"
    )


@user_app.command("list")
def user_list(
    db: Db = None,
    actor: As = None,
    key_file: KeyFile = None,
) -> None:
    """List the staff."""
    rows = [
        (
            m.username,
            m.role,
            "yes" if m.unblinded else "no",
            "yes" if m.may_unblind else "no",
            ", ".join(m.sites),
            "yes" if m.active else "no",
            ("password + code" if m.second_factor else "password") if m.password else "-",
        )
        for m in open_trial(db, actor, key_file).staff()
    ]
    echo_table(
        "Staff",
        ("user", "role", "sees arms", "may unblind", "sites", "active", "sign-in"),
        rows,
    )


@user_app.command("grant")
def user_grant(
    username: Annotated[str, typer.Argument(help="The user to grant.")],
    kind: Annotated[str, typer.Argument(help="One of: " + ", ".join(GRANTS) + ".")],
    reason: Annotated[str, typer.Option(help="Why (recorded, and shown by 'user grants').")],
    db: Db = None,
    actor: As = None,
    key_file: KeyFile = None,
) -> None:
    """Let a user see arms (unblinded) or unblind one participant in an emergency.

    Never to yourself; a second admin may countersign ('lumbar user countersign').
    """
    grant = open_trial(db, actor, key_file).grant(username, kind, reason)
    typer.echo(
        f"grant {grant.id}: {grant.username} {grant.kind} (by {grant.granted_by}); "
        "waiting for a second admin to countersign"
    )


@user_app.command("revoke")
def user_revoke(
    username: Annotated[str, typer.Argument(help="The user.")],
    kind: Annotated[str, typer.Argument(help="One of: " + ", ".join(GRANTS) + ".")],
    reason: Annotated[str, typer.Option(help="Why (recorded).")],
    db: Db = None,
    actor: As = None,
    key_file: KeyFile = None,
) -> None:
    """Take back a grant of arms or emergency unblinding."""
    open_trial(db, actor, key_file).revoke(username, kind, reason)
    typer.echo(f"{username}: {kind} revoked")


@user_app.command("countersign")
def user_countersign(
    grant: Annotated[int, typer.Argument(help="The grant's number ('lumbar user grants').")],
    db: Db = None,
    actor: As = None,
    key_file: KeyFile = None,
) -> None:
    """Confirm, as a second admin, a grant another admin gave."""
    done = open_trial(db, actor, key_file).countersign(grant)
    typer.echo(
        f"grant {done.id}: {done.username} {done.kind}, countersigned by {done.countersigned_by}"
    )


@user_app.command("grants")
def user_grants(
    db: Db = None,
    actor: As = None,
    key_file: KeyFile = None,
) -> None:
    """Who may see arms or unblind, who granted it and why; those awaiting a second admin first."""
    rows = [
        (
            g.id,
            g.username,
            g.kind,
            g.granted_by,
            g.granted_at.date(),
            "revoked" if g.revoked else (g.countersigned_by or "WAITING"),
            g.reason,
        )
        for g in open_trial(db, actor, key_file).grants()
    ]
    echo_table("Grants", ("#", "user", "grant", "by", "on", "countersigned", "reason"), rows)


@user_app.command("deactivate")
def user_deactivate(
    username: Annotated[str, typer.Argument(help="The user.")],
    reason: Annotated[str, typer.Option(help="Why (recorded).")],
    db: Db = None,
    actor: As = None,
    key_file: KeyFile = None,
) -> None:
    """Deactivate a user: from now on they can do nothing (their records stay)."""
    open_trial(db, actor, key_file).set_active(username, False, reason)
    typer.echo(f"{username} deactivated")


@user_app.command("activate")
def user_activate(
    username: Annotated[str, typer.Argument(help="The user.")],
    reason: Annotated[str, typer.Option(help="Why (recorded).")],
    db: Db = None,
    actor: As = None,
    key_file: KeyFile = None,
) -> None:
    """Reactivate a deactivated user."""
    open_trial(db, actor, key_file).set_active(username, True, reason)
    typer.echo(f"{username} active again")


# ---------------------------------------------------------------- passwords


@user_app.command("passwd")
def user_passwd(
    username: Annotated[
        str | None,
        typer.Argument(help="Whose password (default: yours; another user's: admins)."),
    ] = None,
    password_stdin: Annotated[
        bool,
        typer.Option(
            "--password-stdin",
            help="Read the password from the first line of standard input (for scripts).",
        ),
    ] = False,
    db: Db = None,
    actor: As = None,
    key_file: KeyFile = None,
) -> None:
    """Set a password (asked twice, not shown): at least 12 characters, not the user name.

    An admin may set another user's password; that also lifts a lock-out after
    failed sign-ins.
    """
    trial = open_trial(db, actor, key_file)
    if password_stdin:
        password = typer.get_text_stream("stdin").readline().rstrip("\r\n")
    else:
        password = typer.prompt("New password", hide_input=True, confirmation_prompt=True)
    trial.set_password(password, username)
    typer.echo(f"password of {username or trial.principal.username} set")


# ---------------------------------------------------------------- second factor


@totp_app.command("enrol")
def totp_enrol(
    db: Db = None,
    actor: As = None,
    key_file: KeyFile = None,
) -> None:
    """Start your second factor: prints a secret for your authenticator app, once."""
    enrolment = open_trial(db, actor, key_file).enrol_totp()
    typer.echo(f"secret: {enrolment.secret}")
    typer.echo(f"uri: {enrolment.uri}")
    typer.echo(
        "Add it to your authenticator app (type the secret, or make a QR code of the uri), "
        "then turn it on with: lumbar user totp confirm CODE"
    )


@totp_app.command("confirm")
def totp_confirm(
    code: Annotated[str, typer.Argument(help="The 6-digit code your app shows now.")],
    db: Db = None,
    actor: As = None,
    key_file: KeyFile = None,
) -> None:
    """Turn your second factor on: from now on signing in needs a code with the password."""
    open_trial(db, actor, key_file).confirm_totp(code)
    typer.echo("second factor on: sign-in now asks for a code")


@totp_app.command("reset")
def totp_reset(
    username: Annotated[str, typer.Argument(help="The user who lost their second factor.")],
    reason: Annotated[str, typer.Option(help="Why (recorded).")],
    db: Db = None,
    actor: As = None,
    key_file: KeyFile = None,
) -> None:
    """Remove a user's second factor (a lost phone) so they can enrol a new one (admins)."""
    open_trial(db, actor, key_file).reset_totp(username, reason)
    typer.echo(f"second factor of {username} removed; they can enrol a new one")


# ---------------------------------------------------------------- API tokens


@token_app.command("create")
def token_create(
    name: Annotated[str, typer.Option(help="What the token is for, e.g. 'nightly export'.")],
    permission: Annotated[
        list[str],
        typer.Option(
            help="A permission the token carries (repeat); one your role holds: "
            + ", ".join(PERMISSIONS)
            + "."
        ),
    ],
    days: Annotated[int, typer.Option(help="Days until it expires (at most 366).")] = (
        DEFAULT_TOKEN_DAYS
    ),
    db: Db = None,
    actor: As = None,
    key_file: KeyFile = None,
) -> None:
    """Create an API token for yourself; it is printed once and never again."""
    created = open_trial(db, actor, key_file).create_token(name, permission, days)
    typer.echo(f"token {created.id} ({created.name}): {created.token}")
    typer.echo(
        f"carries {', '.join(created.permissions)}; expires {created.expires_at:%Y-%m-%d %H:%M} "
        "UTC. Keep it secret: it is shown only now."
    )


@token_app.command("revoke")
def token_revoke(
    token: Annotated[int, typer.Argument(help="The token's number ('lumbar user token list').")],
    db: Db = None,
    actor: As = None,
    key_file: KeyFile = None,
) -> None:
    """Revoke one of your tokens (admins: anyone's); it stops working at once."""
    open_trial(db, actor, key_file).revoke_token(token)
    typer.echo(f"token {token} revoked")


@token_app.command("list")
def token_list(
    user: Annotated[str | None, typer.Option(help="Another user's tokens (admins).")] = None,
    db: Db = None,
    actor: As = None,
    key_file: KeyFile = None,
) -> None:
    """List your API tokens (never the tokens themselves)."""
    rows = [
        (
            t.id,
            t.name,
            t.prefix + "...",
            ", ".join(t.permissions),
            f"{t.expires_at:%Y-%m-%d}",
            "-" if t.last_used_at is None else f"{t.last_used_at:%Y-%m-%d %H:%M}",
            t.state,
        )
        for t in open_trial(db, actor, key_file).tokens(user)
    ]
    echo_table(
        "API tokens",
        ("#", "name", "starts", "permissions", "expires", "last used", "state"),
        rows,
    )
