"""The keystore: created 0600 under path.data, encrypted at rest, read by ${KEY} before the
environment, refused when readable by others (--strict.perms), values never printed."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from pybeat import keystore
from pybeat.config.sources import Request, load_config
from tests.conftest import REPO


def cli(*args: str, stdin: str | None = None, env: dict[str, str] | None = None, cwd=None):
    e = {k: v for k, v in os.environ.items() if not k.startswith("PYBEAT_")}
    e.update(env or {})
    return subprocess.run([sys.executable, "-m", "pybeat.cli", *args], input=stdin, capture_output=True, text=True,
                          env=e, cwd=cwd or REPO, timeout=60)


def test_create_add_list_remove(tmp_path):
    data = str(tmp_path / "data")
    assert cli("keystore", "create", "--path.data", data).returncode == 0
    path = tmp_path / "data" / "pybeat.keystore"
    assert (path.stat().st_mode & 0o777) == 0o600 and (os.stat(data).st_mode & 0o777) == 0o700
    assert cli("keystore", "add", "ES_PWD", "--stdin", "--path.data", data, stdin="s3cr3t-value\n").returncode == 0
    assert cli("keystore", "add", "API.KEY", "--stdin", "--path.data", data, stdin="k").returncode == 0
    listed = cli("keystore", "list", "--path.data", data)
    assert listed.stdout.split() == ["API.KEY", "ES_PWD"] and "s3cr3t" not in listed.stdout
    again = cli("keystore", "add", "ES_PWD", "--stdin", "--path.data", data, stdin="other")
    assert again.returncode == 1 and "--force" in again.stderr
    assert cli("keystore", "add", "ES_PWD", "--stdin", "--force", "--path.data", data, stdin="new").returncode == 0
    assert keystore.Keystore.open(str(path)).get("ES_PWD") == "new"
    assert cli("keystore", "remove", "API.KEY", "--path.data", data).returncode == 0
    assert cli("keystore", "list", "--path.data", data).stdout.split() == ["ES_PWD"]
    assert b"new" not in path.read_bytes()
    exists = cli("keystore", "create", "--path.data", data)
    assert exists.returncode == 1 and "exists already" in exists.stderr


def test_add_needs_a_keystore_and_a_value(tmp_path):
    data = str(tmp_path / "data")
    out = cli("keystore", "add", "K", "--stdin", "--path.data", data, stdin="v")
    assert out.returncode == 1 and "pybeat keystore create" in out.stderr
    cli("keystore", "create", "--path.data", data)
    out = cli("keystore", "add", "K", "--path.data", data, stdin="v")  # not a terminal, no --stdin
    assert out.returncode == 1 and "--stdin" in out.stderr
    out = cli("keystore", "add", "1BAD", "--stdin", "--path.data", data, stdin="v")
    assert out.returncode == 1 and "invalid key name" in out.stderr


def test_a_passphrase_protects_it_and_a_wrong_one_is_one_line(tmp_path):
    path = str(tmp_path / "k")
    store = keystore.create(path, "right")
    store.set("A", "v")
    store.save()
    assert keystore.Keystore.open(path, "right").get("A") == "v"
    with pytest.raises(keystore.KeystoreError, match="wrong passphrase"):
        keystore.Keystore.open(path, "wrong")
    with pytest.raises(keystore.KeystoreError, match="wrong passphrase"):
        keystore.Keystore.open(path, "")


def test_a_damaged_keystore_is_refused(tmp_path):
    path = tmp_path / "k"
    keystore.create(str(path)).save()
    blob = bytearray(path.read_bytes())
    blob[-5] = ord("A") if blob[-5] != ord("A") else ord("B")
    path.write_bytes(bytes(blob))
    with pytest.raises(keystore.KeystoreError, match="damaged|wrong passphrase"):
        keystore.Keystore.open(str(path))
    path.write_bytes(b"PYBEAT-KEYSTORE-1\nAAAA\n")
    with pytest.raises(keystore.KeystoreError, match="damaged"):
        keystore.Keystore.open(str(path))


def test_variables_read_the_keystore_before_the_environment(tmp_path):
    data = tmp_path / "data"
    store = keystore.create(str(data / "pybeat.keystore"))
    store.set("ES_PWD", "from-keystore")
    store.save()
    cfg = tmp_path / "p.yml"
    cfg.write_text("output.elasticsearch: {hosts: [h], username: u, password: '${ES_PWD}'}\nname: '${HOSTNAME_X}'\n")
    cfg.chmod(0o600)
    raw, _ = load_config(Request([str(cfg)], data=str(data)), env={"ES_PWD": "from-env", "HOSTNAME_X": "n1"})
    assert raw.data["output"]["elasticsearch"]["password"] == "from-keystore" and raw.data["name"] == "n1"


def test_keystore_path_setting_and_strict_perms(tmp_path):
    store = keystore.create(str(tmp_path / "secrets" / "site.keystore"))
    store.set("K", "v1")
    store.save()
    cfg = tmp_path / "p.yml"
    cfg.write_text("keystore.path: secrets/site.keystore\nname: '${K}'\noutput.console: {}\n")
    cfg.chmod(0o600)
    raw, _ = load_config(Request([str(cfg)], config=str(tmp_path)), env={})
    assert raw.data["name"] == "v1"
    os.chmod(tmp_path / "secrets" / "site.keystore", 0o644)
    out = cli("test", "config", "-c", str(cfg), "--path.config", str(tmp_path))
    assert out.returncode == 1 and "chmod 600" in out.stderr and len(out.stderr.strip().splitlines()) == 1
    assert cli("test", "config", "-c", str(cfg), "--path.config", str(tmp_path), "--strict.perms=false").returncode == 0
