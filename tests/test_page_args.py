"""The page's arguments: --allow-remote only with a password (explorer/page_args.py), checked before anything
starts, the same for `python -m explorer` and `apps/explorer_app.py`."""

import argparse

import pytest

from core.errors import UserError
from explorer import page_args
from explorer.__main__ import main
from explorer.page_args import NEEDS_PASSWORD, bind_address, remote_password, websocket_origins


def parse(*argv):
    p = argparse.ArgumentParser()
    page_args.add_page_arguments(p)
    p.add_argument("--address", default=None)
    return p.parse_args(list(argv))


def test_allow_remote_needs_a_password_of_8_characters_or_more(tmp_path):
    assert remote_password(parse(), {"DCE_PASSWORD": "whatever-it-is"}) is None  # this machine only: none needed
    with pytest.raises(UserError) as e:
        remote_password(parse("--allow-remote"), {})
    assert str(e.value) == ("--allow-remote needs a password: set DCE_PASSWORD or pass --password-file FILE "
                            "(8 characters or more)")
    with pytest.raises(UserError, match="DCE_PASSWORD or pass --password-file"):
        remote_password(parse("--allow-remote"), {"DCE_PASSWORD": "   "})
    with pytest.raises(UserError, match=r"the password in DCE_PASSWORD has 7 characters: --allow-remote needs"):
        remote_password(parse("--allow-remote"), {"DCE_PASSWORD": "1234567"})
    assert remote_password(parse("--allow-remote"), {"DCE_PASSWORD": "12345678"}) == "12345678"


def test_the_password_file_gives_its_first_line(tmp_path):
    file = tmp_path / "pw"
    file.write_text("  correct horse  \nsecond line\n")
    env = {"DCE_PASSWORD": "the-environment's"}
    assert remote_password(parse("--allow-remote", "--password-file", str(file)), env) == "correct horse"
    file.write_text("short\n")
    with pytest.raises(UserError, match=r"first line of .*pw has 5 characters.*8 characters or more"):
        remote_password(parse("--allow-remote", "--password-file", str(file)), env)
    file.write_text("")
    with pytest.raises(UserError, match="is empty: --allow-remote needs a password"):
        remote_password(parse("--allow-remote", "--password-file", str(file)), env)
    file.write_bytes(b"\xff\xfe\x00binary")
    with pytest.raises(UserError, match="cannot read the password file"):
        remote_password(parse("--allow-remote", "--password-file", str(file)), env)
    with pytest.raises(UserError, match="cannot read the password file .*missing: No such file"):
        remote_password(parse("--allow-remote", "--password-file", str(tmp_path / "missing")), env)
    with pytest.raises(UserError, match="--password-file goes with --allow-remote"):
        remote_password(parse("--password-file", str(file)), env)
    file.write_text(str(file) + "\n")  # Panel would read a file's name as a file of users
    with pytest.raises(UserError, match="is the name of a file"):
        remote_password(parse("--allow-remote", "--password-file", str(file)), env)


def test_where_the_page_listens_and_whose_websockets_it_takes():
    assert bind_address(parse()) == "127.0.0.1"
    assert bind_address(parse("--allow-remote")) == "0.0.0.0"
    assert bind_address(parse("--allow-remote", "--address", "127.0.0.1")) == "127.0.0.1"
    assert bind_address(parse("--address", "0.0.0.0")) == "0.0.0.0"  # bound, but the app still refuses others
    assert websocket_origins("127.0.0.1", 5006) is None
    origins = websocket_origins("0.0.0.0", 5006)
    assert "localhost:5006" in origins and "*" not in origins and all(o.endswith(":5006") for o in origins)


def test_python_m_explorer_refuses_allow_remote_without_a_password_before_anything_starts(tmp_path, monkeypatch,
                                                                                         capsys):
    monkeypatch.delenv("DCE_PASSWORD", raising=False)
    runs = tmp_path / "runs"
    assert main(["--runs", str(runs), "--allow-remote", "--no-show", "--train", "digits"]) == 2
    assert capsys.readouterr().err.strip() == f"error: {NEEDS_PASSWORD}"
    assert not runs.exists()  # no run was started
    monkeypatch.setenv("DCE_PASSWORD", "short")
    assert main(["--runs", str(runs), "--allow-remote", "--no-show"]) == 2
    assert "has 5 characters" in capsys.readouterr().err


def test_panel_serve_refuses_allow_remote_without_a_login(monkeypatch):
    import panel as pn

    assert page_args.served_auth_problem(False) is None
    assert "--basic-auth" in page_args.served_auth_problem(True)
    monkeypatch.setattr(pn.config, "basic_auth", "a password of panel serve")
    assert "--cookie-secret" in page_args.served_auth_problem(True)
    monkeypatch.setattr(pn.config, "cookie_secret", "a long random string of panel serve")
    assert page_args.served_auth_problem(True) is None


def test_a_taken_port_is_passed_over_before_anything_starts(tmp_path):
    import socket
    import subprocess
    import sys

    from conftest import REPO
    from explorer.__main__ import free_port

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert free_port("127.0.0.1", port) != port and free_port("127.0.0.1", port) > port
        with pytest.raises(UserError, match="all in use: pass --port"):
            free_port("127.0.0.1", port, tries=1)
        # a second `python -m explorer --train` beside a first: the next port, said in one line, before training
        proc = subprocess.Popen([sys.executable, "-m", "explorer", "--no-show", "--runs", str(tmp_path / "runs"),
                                 "--port", str(port)], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True)
        try:
            first = proc.stdout.readline()
            assert first.startswith(f"port {port} is in use (another explorer?): serving on "), first
            served = int(first.rsplit(" ", 1)[1])
            assert served > port and f"explorer: http://127.0.0.1:{served}" in proc.stdout.readline()
        finally:
            proc.terminate()
            proc.wait(30)
