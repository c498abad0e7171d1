"""The page's command-line arguments and their checks, shared by `python -m explorer` and `apps/explorer_app.py`
(`panel serve`), so that both serve the same runs to the same people.

Other machines are served only with `--allow-remote` and a password (docs/explorer.md, "Safety"):

- `python -m explorer --allow-remote` takes it from `DCE_PASSWORD` or the first line of `--password-file FILE`
  (8 characters or more) and serves with Panel's basic auth (a login page) on 0.0.0.0 unless `--address` says
  otherwise. Without one it stops before anything starts: `error: --allow-remote needs a password: ...`, exit 2.
- `panel serve apps/explorer_app.py --basic-auth ... --cookie-secret ... --args --allow-remote`: Panel's own
  options give the password; the app refuses `--allow-remote` when the server has no login.

Either way a browser on another machine gets the page only with `--allow-remote` and a logged-in session
(`explorer.app.remote_refusal`); `--address 0.0.0.0` alone does not widen access.
"""

from __future__ import annotations

import argparse
import os
import secrets
import socket
import subprocess
from pathlib import Path

from core.errors import UserError

PASSWORD_ENV = "DCE_PASSWORD"
MIN_PASSWORD = 8
NEEDS_PASSWORD = (f"--allow-remote needs a password: set {PASSWORD_ENV} or pass --password-file FILE "
                  f"({MIN_PASSWORD} characters or more)")
NEEDS_SERVER_LOGIN = ("--allow-remote needs a password: start panel serve with --basic-auth PASSWORD (or a users "
                      "file) and --cookie-secret SECRET, or use python -m explorer --allow-remote with "
                      f"{PASSWORD_ENV} or --password-file FILE")
LOOPBACK = ("127.0.0.1", "localhost", "::1")


def add_page_arguments(parser: argparse.ArgumentParser, *, password_file: bool = True) -> None:
    """The arguments both entry points take: the runs root, the data root, --allow-remote (and, for
    `python -m explorer`, --password-file)."""
    parser.add_argument("--runs", default="runs", help="the runs folder (default ./runs)")
    parser.add_argument("--data-root", default=None,
                        help="data paths typed into the page must lie below it (default: the runs folder's parent)")
    parser.add_argument("--allow-remote", action="store_true",
                        help="serve browsers on other machines too, after a login with a password")
    if password_file:
        parser.add_argument("--password-file", metavar="FILE", default=None,
                            help=f"with --allow-remote: the password, the file's first line (or set {PASSWORD_ENV})")


def remote_password(args: argparse.Namespace, environ=None) -> str | None:
    """The password that guards the page: None without --allow-remote; with it, the first line of
    --password-file or DCE_PASSWORD, at least 8 characters. UserError (one line) when there is none or it is
    unusable."""
    environ = os.environ if environ is None else environ
    file = getattr(args, "password_file", None)
    if not args.allow_remote:
        if file:
            raise UserError("--password-file goes with --allow-remote (the page serves this machine only without it)")
        return None
    if file:
        try:
            text = Path(file).expanduser().read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            reason = e.strerror if isinstance(e, OSError) and e.strerror else type(e).__name__
            raise UserError(f"cannot read the password file {file}: {reason}") from None
        password, source = (text.splitlines() or [""])[0].strip(), f"the first line of {file}"
    else:
        password, source = (environ.get(PASSWORD_ENV) or "").strip(), PASSWORD_ENV
    if not password:
        raise UserError(NEEDS_PASSWORD if not file else f"{source} is empty: {NEEDS_PASSWORD}")
    if len(password) < MIN_PASSWORD:
        raise UserError(f"the password in {source} has {len(password)} characters: {NEEDS_PASSWORD}")
    if any(ord(ch) < 32 for ch in password):
        raise UserError(f"the password in {source} contains control characters")
    if os.path.isfile(password):  # Panel's basic_auth takes an existing file's name as a file of users
        raise UserError(f"the password in {source} is the name of a file; choose another password")
    return password


def bind_address(args: argparse.Namespace) -> str:
    """--address when given; else 0.0.0.0 with --allow-remote (every interface; the login guards it), else
    127.0.0.1 (this machine only)."""
    if args.address:
        return args.address
    return "0.0.0.0" if args.allow_remote else "127.0.0.1"


def cookie_secret() -> str:
    """A fresh random secret that signs the login cookie (a restart logs everyone out)."""
    return secrets.token_urlsafe(32)


def own_hosts() -> list[str]:
    """Names and IPv4 addresses of this machine, as a browser elsewhere would type them (Bokeh's origin list takes
    no IPv6 addresses)."""
    hosts = {"localhost", "127.0.0.1"}
    for name in {socket.gethostname(), socket.getfqdn()}:
        hosts.add(name)
        try:
            hosts.update(info[4][0] for info in socket.getaddrinfo(name, None, socket.AF_INET))
        except OSError:
            pass
    try:
        out = subprocess.run(["hostname", "-I"], capture_output=True, text=True, timeout=5).stdout
        hosts.update(out.split())
    except (OSError, subprocess.SubprocessError):
        pass
    return sorted(h for h in hosts if h and ":" not in h)


def websocket_origins(address: str, port: int) -> list[str] | None:
    """The page origins whose browsers may open the page's websocket: Bokeh's default (this machine) on a loopback
    address; on any other, this machine's own names and addresses as well, so that a browser elsewhere reaches the
    page (and its login, or the refusal), while a web page of another site cannot drive this one. (Behind a proxy
    with another name: `panel serve ... --allow-websocket-origin NAME`.)"""
    if address in LOOPBACK:
        return None
    return [f"{host}:{port}" for host in own_hosts()]


def served_auth_problem(allow_remote: bool) -> str | None:
    """For `panel serve`: NEEDS_SERVER_LOGIN when --allow-remote is asked of a server without a login (Panel's
    --basic-auth or an OAuth provider), else None."""
    if not allow_remote:
        return None
    import panel as pn

    if not (pn.config.basic_auth or pn.config.oauth_provider):
        return NEEDS_SERVER_LOGIN
    if not pn.config.cookie_secret:  # the login cookie cannot be signed: nobody could log in
        return "--basic-auth needs --cookie-secret SECRET too (a long random string) to sign the login cookie"
    return None
