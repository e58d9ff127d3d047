"""The package index's first start: devpi-init with the random root password."""

import os

from sandbox.pypi import server


def test_a_root_password_that_starts_with_a_dash_initialises_the_server(monkeypatch, tmp_path):
    # token_urlsafe draws from A-Z a-z 0-9 - _: one password in 64 starts with "-",
    # which devpi-init's parser took for an option when it came as its own argument.
    monkeypatch.setattr(server.secrets, "token_urlsafe", lambda size: "-" + "a" * (size - 1))
    directory = tmp_path / "pypi"
    server._initialise(directory)
    assert (directory / "root-password").read_text() == "-" + "a" * 23 + "\n"
    assert os.stat(directory / "root-password").st_mode & 0o777 == 0o600
    # devpi-init wrote its server state (it refuses to run twice on one directory).
    assert any((directory / "server").iterdir())
