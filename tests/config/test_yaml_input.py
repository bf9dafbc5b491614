"""Reading YAML: empty sections, merge keys, and hostile input (alias bombs, alias loops, deep
nesting) refused quickly, in little memory, with one line naming the file and line."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from pybeat.config import ConfigError, load
from pybeat.config.loader import parse_yaml
from pybeat.config.yamltree import MAX_ALIAS_VALUES
from tests.conftest import REPO


def billion_laughs(levels: int = 9) -> str:
    lines = ['l0: &l0 "lol"']
    for i in range(1, levels + 1):
        lines.append(f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 10) + "]")
    return "\n".join(lines) + "\n"


def test_an_empty_section_is_an_empty_value_not_a_parser_error():
    data, origins = parse_yaml("setup.kibana:\n\n  # host: x\n  #space.id:\nname: x\n", "p.yml")
    assert data == {"setup": {"kibana": None}, "name": "x"} and origins["setup.kibana"] == "p.yml:1"


def test_merge_keys_and_anchors_work_and_own_keys_win():
    data, _ = parse_yaml("base: &b {a: 1, b: 2}\nsite:\n  c: 3\n  <<: *b\n  b: 9\n", "p.yml")
    assert data["site"] == {"a": 1, "b": 9, "c": 3}


def test_a_nine_level_billion_laughs_fails_fast_and_small(tmp_path):
    path = tmp_path / "bomb.yml"
    path.write_text(billion_laughs(9))
    code = (
        # peak memory of this process alone (ru_maxrss would carry pytest's over the fork)
        "import json, time, sys\n"
        "from pybeat.config import load, ConfigError\n"
        # CPU time, not wall time: the bound is about the work done, and the CI machine is shared
        "t = time.process_time()\n"
        "try:\n    load(sys.argv[1]); message = None\nexcept ConfigError as e:\n    message = str(e)\n"
        "hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM')][0].split()[1]\n"
        "print(json.dumps({'message': message, 'seconds': time.process_time() - t, 'rss_kb': int(hwm)}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=60, cwd=REPO)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["message"].startswith("bomb.yml:"), result
    assert f"more than {MAX_ALIAS_VALUES:,} values" in result["message"]
    # unbounded, this ran past 60 s and 324 MB; the Python process itself is ~45 MB
    assert result["seconds"] < 5.0 and result["rss_kb"] < 200_000, result


def test_a_self_referencing_alias_is_one_line_not_a_recursion_error(tmp_path):
    path = tmp_path / "loop.yml"
    path.write_text("a: &x\n  b: *x\n")
    with pytest.raises(ConfigError) as err:
        load(str(path))
    assert str(err.value) == "loop.yml:1: a YAML alias refers to the value that contains it (a loop)"


def test_too_many_alias_references_are_refused(tmp_path):
    text = "x: &x 1\nl: [" + ", ".join(["*x"] * 2000) + "]\n"
    path = tmp_path / "refs.yml"
    path.write_text(text)
    # scalars re-used through aliases are cheap, but a list of many alias references is not
    load(str(path))  # scalar aliases are not counted as expansions
    path.write_text("x: &x [1]\nl: [" + ", ".join(["*x"] * 2000) + "]\n")
    with pytest.raises(ConfigError, match="more than 1,000 YAML alias references"):
        load(str(path))


def test_deep_nesting_is_one_line(tmp_path):
    path = tmp_path / "deep.yml"
    path.write_text("a: " + "[" * 200 + "]" * 200 + "\n")
    with pytest.raises(ConfigError, match=r"deep.yml:1: values nested more than 64 levels deep"):
        load(str(path))
    path.write_text("a: " + "[" * 5000 + "]" * 5000 + "\n")
    with pytest.raises(ConfigError, match=r"deep.yml:1: not valid YAML"):
        load(str(path))


def test_the_cli_prints_one_line_and_no_traceback_for_an_alias_bomb(tmp_path):
    path = tmp_path / "bomb.yml"
    path.write_text(billion_laughs(9))
    path.chmod(0o600)
    start = time.monotonic()
    out = subprocess.run([sys.executable, "-m", "pybeat.cli", "test", "config", "-c", str(path)],
                         capture_output=True, text=True, timeout=60, cwd=REPO)
    assert out.returncode == 1 and time.monotonic() - start < 10
    assert "Traceback" not in out.stderr and len(out.stderr.strip().splitlines()) == 1
    assert "bomb.yml:" in out.stderr and "alias" in out.stderr


def test_a_key_with_no_value_takes_its_default(tmp_path):
    from pybeat.config import load_settings
    from pybeat.plugins import load_registry

    path = tmp_path / "p.yml"
    path.write_text("name:\ntags:\npacketbeat.interfaces:\n  device:\n  snaplen:\noutput.console:\n")
    s = load_settings(load(str(path)), load_registry())
    assert s.agent.name is None and s.agent.tags == [] and s.agent.packetbeat.interfaces.snaplen == 65535
    assert [o.name for o in s.outputs] == ["console"]
