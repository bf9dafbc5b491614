"""The ``pybeat`` command line, shaped like Packetbeat's.

    pybeat [run] [-c FILE] [-I capture.pcap] [-t] [-l N] [--dump FILE] [-E key=value ...] [-e] [-d SEL]
    pybeat test config | test output
    pybeat export config | template | ilm-policy
    pybeat setup [--index-management]
    pybeat devices | plugins | version
    pybeat new-plugin protocol|output|processor|detector NAME [--dir DIR]
    pybeat service install | remove | start | stop      (Windows)

Global flags work before or after the command. Errors print one readable message and exit 1;
a config error names the key, the file and line, the value and what was expected.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any, Sequence

import yaml

from pybeat.agent.build import StartupError
from pybeat.config.loader import ConfigError
from pybeat.config.settings import Settings, load_settings
from pybeat.plugins import PluginError, Registry, load_registry
from pybeat.version import __version__



def _add_global(p: argparse.ArgumentParser, sub: bool) -> None:
    d = argparse.SUPPRESS if sub else None
    # -c is repeatable: the files are merged in order (docs/configuration.md); main() joins the
    # ones given before and after the command.
    p.add_argument("-c", "--c", dest="config_sub" if sub else "config", action="append", metavar="FILE",
                   default=d if sub else [],
                   help="config file, repeatable: merged in order (default: pybeat.yml or packetbeat.yml in path.config)")
    # -E after the command goes to its own list (argparse would replace the first one); main()
    # joins both, in order.
    p.add_argument("-E", "--E", dest="overrides_sub" if sub else "overrides", action="append", metavar="KEY=VALUE",
                   default=d if sub else [], help="override a setting (repeatable)")
    p.add_argument("-e", "--e", dest="log_stderr", action="store_true", default=d if sub else False,
                   help="log to stderr instead of files")
    p.add_argument("-d", "--d", dest="debug", metavar="SELECTORS", default=d,
                   help='debug selectors ("*" for all)')
    p.add_argument("-v", dest="verbose", action="store_true", default=d if sub else False, help="log at info level")
    for name in ("home", "config", "data", "logs"):
        p.add_argument(f"--path.{name}", dest=f"path_{name}", metavar="DIR", default=d)
    p.add_argument("--strict.perms", dest="strict_perms", default=d if sub else "true",
                   choices=["true", "false"], help="check config file ownership and mode (default true)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pybeat", description="A Packetbeat-compatible network agent.")
    _add_global(parser, sub=False)
    cmds = parser.add_subparsers(dest="command", metavar="COMMAND")

    def sub(name: str, help_text: str) -> argparse.ArgumentParser:
        p = cmds.add_parser(name, help=help_text, description=help_text)
        _add_global(p, sub=True)
        return p

    run = sub("run", "capture and publish (the default command)")
    _add_run_flags(run)
    test = sub("test", "test the config or the output connection")
    test.add_argument("what", choices=["config", "output"])
    export = sub("export", "print the effective config, the index template or the ILM/ISM policy")
    export.add_argument("what", choices=["config", "template", "ilm-policy"])
    export.add_argument("--es.version", dest="es_version", default=None,
                        help="target version, e.g. 8.15.0 or opensearch-2.19.0 (ISM policy)")
    setup = sub("setup", "set up index management in Elasticsearch/OpenSearch")
    setup.add_argument("--index-management", action="store_true")
    _add_keystore(sub("keystore", "manage the secrets that ${KEY} in the config reads (pybeat.keystore)"))
    sub("devices", "list the capture devices")
    sub("plugins", "list installed protocol, output, processor and detector plugins")
    sub("version", "print the version")
    newp = sub("new-plugin", "write a plugin package to start from (docs/plugins.md)")
    newp.add_argument("kind", choices=["protocol", "output", "processor", "detector"])
    newp.add_argument("name", help="the plugin's name (the config key): lower case, digits, _")
    newp.add_argument("--dir", dest="dir", default=".", help="where to write pybeat-NAME/ (default: here)")
    service = sub("service", "install, remove, start or stop the Windows service")
    service.add_argument("action", choices=["install", "remove", "start", "stop"])
    _add_run_flags(parser, top=True)
    return parser


def _add_keystore(p: argparse.ArgumentParser) -> None:
    actions = p.add_subparsers(dest="keystore_action", metavar="ACTION", required=True)

    def action(name: str, help_text: str) -> argparse.ArgumentParser:
        a = actions.add_parser(name, help=help_text, description=help_text)
        _add_global(a, sub=True)
        return a

    action("create", "create an empty keystore").add_argument(
        "--force", action="store_true", help="replace an existing keystore")
    add = action("add", "add a key (the value is prompted for, or read with --stdin)")
    add.add_argument("key")
    add.add_argument("--stdin", action="store_true", help="read the value from standard input")
    add.add_argument("--force", action="store_true", help="overwrite the key if it exists")
    action("list", "list the keys (never the values)")
    action("remove", "remove keys").add_argument("keys", nargs="+", metavar="KEY")


def _loops(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError("-l takes 0 (forever) or a positive number of passes")
    return value


def _add_run_flags(p: argparse.ArgumentParser, top: bool = False) -> None:
    # No defaults at either level (main() fills them in), so flags given before the command
    # are not overwritten by the command's own defaults.
    d = argparse.SUPPRESS
    p.add_argument("-I", dest="file", metavar="FILE", default=d, help="read packets from a pcap/pcapng file")
    p.add_argument("-t", dest="fast", action="store_true", default=d, help="read the file as fast as possible")
    p.add_argument("-l", dest="loops", type=_loops, default=d, metavar="N",
                   help="replay the file N times (0 = forever; default 1)")
    p.add_argument("--dump", dest="dump", metavar="PREFIX", default=d,
                   help="write captured packets to PREFIX-<yyyyMMddHHmmss>.pcap")
    p.add_argument("-N", dest="no_publish", action="store_true", default=d,
                   help="disable publishing to every output but file")


class CliError(Exception):
    pass


def _request(args: argparse.Namespace, need_file: bool = True) -> Any:
    from pybeat.config.sources import Request

    return Request(list(args.config), list(args.overrides), args.path_home, args.path_config, args.path_data,
                   args.path_logs, args.strict_perms == "true", need_file)


def _load(args: argparse.Namespace, registry: Registry, require_output: bool, need_file: bool = True) -> Settings:
    """The validated config; ``need_file=False``: the defaults when there is no config file
    (``export template`` and friends, as Packetbeat's)."""
    from pybeat.config.sources import load_config

    raw, _ = load_config(_request(args, need_file))
    return load_settings(raw, registry, require_output=require_output)


def cmd_run(args: argparse.Namespace, registry: Registry) -> int:
    from pybeat.agent import Agent, Paths, RunOptions
    from pybeat.logs import setup_logging

    settings = _load(args, registry, require_output=True)
    if getattr(args, "no_publish", False):
        settings.outputs = [o for o in settings.outputs if o.name == "file"]
        if not settings.outputs:
            raise CliError("-N leaves no output enabled (only the file output stays on)")
    paths = Paths.resolve(
        args.path_home or settings.agent.path.home,
        args.path_config or settings.agent.path.config,
        args.path_data or settings.agent.path.data,
        args.path_logs or settings.agent.path.logs,
    )
    lc = settings.agent.logging
    selectors = [s for s in (args.debug or "").split(",") if s] or lc.selectors
    level = "debug" if selectors else ("info" if args.verbose and lc.level in ("warning", "warn", "error", "critical") else lc.level)
    log = setup_logging(
        level=level,
        to_stderr=args.log_stderr or lc.to_stderr or not lc.to_files,
        logs_dir=lc.files.path or paths.logs,
        name=lc.files.name,
        selectors=selectors,
    )
    for w in settings.warnings:
        log.warning(w)
    from pybeat._compat import log_deprecations

    log_deprecations(log)  # 0.1 plugins' deprecated uses, once each, in the log
    options = RunOptions(file=args.file, loops=args.loops, fast=args.fast, dump=args.dump)
    workers = settings.agent.packetbeat.workers
    if workers == "auto":
        workers = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if workers > 1 and args.file:
        from pybeat.agent import run_sharded

        result = run_sharded(settings, registry, paths, log, options, workers)
    else:
        agent = Agent(settings, registry, paths, log, options)
        if getattr(args, "on_agent", None) is not None:  # the Windows service, to stop it later
            args.on_agent(agent)
        result = agent.run()
    # The summary goes where the events do not: stdout, unless an output writes events there.
    to_stderr = any(k.endswith(".location") and v == "stdout" for k, v in result.metrics.items())
    print(_scrub(result.summary), file=sys.stderr if to_stderr else sys.stdout, flush=True)
    return result.exit_code


def cmd_test(args: argparse.Namespace, registry: Registry) -> int:
    if args.what == "config":
        settings = _load(args, registry, require_output=False)
        for w in settings.warnings:
            print(f"warning: {w}", file=sys.stderr)
        print("Config OK")
        return 0
    settings = _load(args, registry, require_output=True)
    ok = True
    for out in settings.outputs:
        tester = getattr(out.plugin, "test_connection", None)
        if not callable(tester):
            print(f"{out.name}: nothing to test (the output offers no connection test)")
            continue
        try:
            ok = bool(tester(out.config, _admin_context(settings, registry))) and ok
        except Exception as exc:  # a plugin's test that fails instead of reporting
            print(f"{out.name}: ERROR {type(exc).__name__}: {exc}")
            ok = False
    return 0 if ok else 1


def _admin_context(settings: Settings | None, registry: Registry, options: dict[str, str] | None = None) -> Any:
    from pybeat.api import AdminContext, BeatInfo
    from pybeat.fieldtypes import declared_field_types

    if settings is not None:
        plugins = [(p.name, p.plugin) for p in settings.protocols] + [(d.name, d.plugin) for d in settings.detectors]
        setup = settings.agent.setup.model_dump(by_alias=True)
    else:  # no config: every installed protocol and detector
        plugins = [(getattr(p, "name", "?"), p) for kind in ("protocols", "detectors") for p in registry.usable(kind)]
        setup = {}
    return AdminContext(beat=BeatInfo(version=__version__), out=sys.stdout, setup=setup,
                        field_types=declared_field_types(plugins), options=options or {})


def cmd_export(args: argparse.Namespace, registry: Registry) -> int:
    settings = _load(args, registry, require_output=False, need_file=False)
    if args.what == "config":
        from pybeat.secrets import mask_tree

        print(yaml.safe_dump(mask_tree(settings.raw.data), sort_keys=False, default_flow_style=False), end="")
        return 0
    # template / ilm-policy: offered by an output plugin (the configured ones first, then any
    # installed one), for the configured protocols or, without a config file, every installed one.
    from pybeat.config.sources import config_files

    configured = settings if (config_files(_request(args, need_file=False)) or args.overrides) else None
    candidates: list[tuple[Any, Any]] = [(o.plugin, o.config) for o in settings.outputs]
    candidates += [(p, None) for p in registry.usable("outputs")]
    for plugin, config in candidates:
        if args.what in getattr(plugin, "exports", ()):
            if config is None:
                config = plugin.config_model()
            options = {"es.version": args.es_version} if args.es_version else {}
            body = plugin.export(args.what, config, _admin_context(configured, registry, options))
            import orjson

            print(orjson.dumps(body, option=orjson.OPT_INDENT_2).decode())
            return 0
    raise CliError(f"no installed output can export {args.what!r}")


def cmd_setup(args: argparse.Namespace, registry: Registry) -> int:
    settings = _load(args, registry, require_output=True)
    done = False
    for out in settings.outputs:
        setup = getattr(out.plugin, "setup", None)
        if callable(setup):
            setup(out.config, _admin_context(settings, registry))
            done = True
    if not done:
        raise CliError("no enabled output has anything to set up (index management needs output.elasticsearch)")
    return 0


def cmd_keystore(args: argparse.Namespace, registry: Registry) -> int:
    """``pybeat keystore create|add|list|remove``: values are read, never printed."""
    from pybeat import keystore
    from pybeat.config.loader import load
    from pybeat.config.sources import config_files, keystore_path, resolve_paths

    req = _request(args, need_file=False)
    files = config_files(req)  # keystore.path and path.data may be set in the config
    raw = load(files, [o for o in req.overrides if o.startswith(("path.", "keystore."))], expand=False, includes=False)
    paths = resolve_paths(req, raw.data)
    path = keystore_path(raw.data, paths, os.environ)
    passphrase = keystore.passphrase_from_env()
    action = args.keystore_action
    try:
        if action == "create":
            keystore.create(path, passphrase, force=args.force)
            print(f"Created pybeat keystore {path}")
            return 0
        if args.strict_perms == "true" and os.path.exists(path):
            keystore.check_perms(path)
        store = keystore.Keystore.open(path, passphrase)
        if action == "list":
            for key in store.keys():
                print(key)
            return 0
        if action == "remove":
            for key in args.keys:
                store.remove(key)
            store.save()
            return 0
        keystore.check_name(args.key)
        if args.key in store and not args.force:
            raise keystore.KeystoreError(f"key {args.key!r} exists already in {path!r} (--force to overwrite it)")
        value = _secret_value(args.key, args.stdin)
        store.set(args.key, value)
        store.save()
        print(f"Added {args.key!r} to the keystore")
        return 0
    except keystore.KeystoreError as exc:
        raise CliError(str(exc)) from None


def _secret_value(key: str, from_stdin: bool) -> str:
    if from_stdin:
        value = sys.stdin.read()
        value = value[:-1] if value.endswith("\n") else value  # `echo secret |` adds one newline
    elif sys.stdin.isatty():
        import getpass

        value = getpass.getpass(f"Enter value for {key}: ")
    else:
        raise CliError("standard input is not a terminal: pass --stdin to read the value from it")
    if not value:
        raise CliError(f"no value given for {key!r}")
    return value


def cmd_devices(args: argparse.Namespace, registry: Registry) -> int:
    try:
        from pybeat.capture.devices import format_devices
    except ImportError as exc:
        raise CliError(f"device listing is not available in this build: {exc}") from None
    print(format_devices())
    return 0


def cmd_new_plugin(args: argparse.Namespace, registry: Registry) -> int:
    from pybeat.testing.template import TemplateError, write_package

    try:
        root = write_package(args.kind, args.name, args.dir, frozenset(registry.names(f"{args.kind}s")))
    except TemplateError as exc:
        raise CliError(str(exc)) from None
    print(f"wrote {root}\nnext: pip install -e '{root}[test]' && python -m pytest {root}")
    return 0


def cmd_plugins(args: argparse.Namespace, registry: Registry) -> int:
    """Every installed plugin with the pybeat.api version it asks for; exit 1 if any is broken."""
    from pybeat.api import API_VERSION

    print(f"pybeat.api {API_VERSION} (plugins declaring no api_version are served as 0.1)")
    broken = 0
    infos = sorted(registry.all(), key=lambda i: (i.kind, i.name))
    width = max((len(i.name) for i in infos), default=0)
    value_width = max((len(i.value) for i in infos), default=0)
    for info in infos:
        if info.error:
            broken += 1
            state = f"BROKEN: {info.error}"
        elif getattr(info.plugin, "supported", True) is False:
            state = "known name, not supported (using it is a config error)"
        else:
            state = "ok" + (" (api 0.1, deprecated)" if info.legacy else "")
        api = info.api_version or "-"
        print(f"{info.kind[:-1]:9} {info.name:{width}} api {api:5} {info.value:{value_width}} "
              f"{info.distribution or '-':10} {state}")
    if broken:
        print(f"pybeat: {broken} plugin(s) cannot be used (see BROKEN above)", file=sys.stderr)
        return 1
    return 0


def main(argv: Sequence[str] | None = None, on_agent: Any = None) -> int:
    """``on_agent(agent)`` is called with the agent of ``run`` before it starts (it is how the
    Windows service stops it)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    args.on_agent = on_agent
    for attr, default in (("file", None), ("fast", False), ("loops", 1), ("dump", None), ("no_publish", False)):
        if not hasattr(args, attr):
            setattr(args, attr, default)
    for attr in ("debug", "path_home", "path_config", "path_data", "path_logs"):
        if not hasattr(args, attr):
            setattr(args, attr, None)
    args.config = list(getattr(args, "config", None) or []) + list(getattr(args, "config_sub", None) or [])
    args.overrides = list(getattr(args, "overrides", None) or []) + list(getattr(args, "overrides_sub", None) or [])
    command = args.command or "run"
    if command == "version":
        print(f"pybeat version {__version__} (packetbeat-compatible; python {sys.version.split()[0]})")
        return 0
    if command == "service":
        from pybeat import service

        if len(args.config) > 1:  # the service runs one file; more come from pybeat.config.d
            print("pybeat: error: the service takes one -c file (put the others in pybeat.d/, "
                  "see docs/configuration.md)", file=sys.stderr)
            return 1
        return service.main(args.action, home=args.path_home, config=args.path_config, data=args.path_data,
                            logs=args.path_logs, config_file=(args.config or [None])[0])
    try:
        registry = load_registry()
        handler = {
            "run": cmd_run, "test": cmd_test, "export": cmd_export, "setup": cmd_setup,
            "devices": cmd_devices, "plugins": cmd_plugins, "new-plugin": cmd_new_plugin, "keystore": cmd_keystore,
        }[command]
        if command in ("test", "setup", "export"):
            # What these print comes from libraries and outputs too: hide remembered secrets
            # and every secret shape in it (pybeat/secrets.py).
            sys.stdout = _Scrubbed(sys.stdout)
        return handler(args, registry)
    except ConfigError as exc:
        print(f"pybeat: {_scrub(str(exc))}", file=sys.stderr)
        return 1
    except StartupError as exc:
        print(f"pybeat: error: {_scrub(str(exc))}", file=sys.stderr)
        return 1
    except (CliError, PluginError) as exc:
        print(f"pybeat: error: {_scrub(str(exc))}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("pybeat: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `pybeat export template | head`: the reader left, nothing to report
        try:
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115 (silence the flush at exit)
        except OSError:
            pass
        return 0
    except Exception as exc:  # the capture source or an output failed to start
        from pybeat.capture import CaptureFileError

        if isinstance(exc, CaptureFileError):
            print(f"pybeat: error: {_scrub(str(exc))}", file=sys.stderr)
            return 1
        capture_error = _capture_error_type()
        if capture_error is not None and isinstance(exc, capture_error):
            print(f"pybeat: error: {_scrub(str(exc))}", file=sys.stderr)
            return 1
        if args.debug == "*":  # the traceback, masked like every other line
            import traceback

            print(_scrub(traceback.format_exc()), file=sys.stderr, end="")
        else:
            print(f"pybeat: error: {_scrub(f'{type(exc).__name__}: {exc}')} (-d '*' shows where)", file=sys.stderr)
        return 1


def _scrub(text: str) -> str:
    from pybeat.secrets import scrub

    return scrub(text)


class _Scrubbed:
    """A text stream whose writes have secrets hidden (pybeat/secrets.py's ``scrub``)."""

    def __init__(self, stream: Any):
        self._stream = stream

    def write(self, text: str) -> int:
        return self._stream.write(_scrub(text))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def _capture_error_type() -> Any:
    try:
        from pybeat.capture.errors import CaptureError
    except ImportError:
        return None
    return CaptureError


if __name__ == "__main__":
    sys.exit(main())
