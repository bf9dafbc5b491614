"""Map the repository's top-level protocols/ and outputs/ folders into the pybeat namespace.

A package named "outputs" exists on PyPI, so nothing may install under that name: protocols/
installs as pybeat.protocols and outputs/ as pybeat.outputs. New plugin packages are found
automatically (any folder with an __init__.py).
"""

import os
import shutil

from setuptools import find_packages, setup

MAPPED = {"pybeat.protocols": "protocols", "pybeat.outputs": "outputs"}

packages = find_packages(include=["pybeat", "pybeat.*"])
package_dir = {"pybeat": "pybeat"}
for name, folder in MAPPED.items():
    packages.append(name)
    package_dir[name] = folder
    packages += [f"{name}.{sub}" for sub in find_packages(where=folder)]

# Field declarations (fields.yml) travel with the core and with each plugin package.
package_data = {name: ["fields.yml"] for name in packages}
package_data["pybeat"] = ["py.typed", "fields.yml"]
# The compiled code's sources and declarations (an sdist builds them; .pxd for cimport)
package_data["pybeat.decode"] = ["_replay.pyx", "_replay.pxd"]
package_data["pybeat.agent"] = ["_batch.pyx"]
package_data["pybeat.protocols.dns"] = ["fields.yml", "_fast.pyx", "pairing.pxd"]
package_data["pybeat.protocols.dns.detection"] = ["fields.yml", "_view.pyx", "_detect.pyx"]
package_data["pybeat.flows"] = ["_fast.pyx"]

from setuptools.command.build_ext import build_ext  # noqa: E402


class OptionalBuildExt(build_ext):
    """Every compiled extension is optional, whatever _extensions() lists: when one cannot be
    built (no C compiler, CC=/bin/false, no Python headers) the install goes on without it and
    pybeat runs the Python code that extension mirrors. (cythonize() does not keep an
    Extension's own optional=True, so this does not rely on it.) PYBEAT_REQUIRE_COMPILED=1
    makes a failed extension fail the install instead."""

    def run(self) -> None:
        try:
            super().run()
        except Exception as exc:  # noqa: BLE001 - e.g. no usable compiler at all
            self._skipped("the compiled extensions", exc)

    def build_extension(self, ext) -> None:  # type: ignore[no-untyped-def]
        try:
            super().build_extension(ext)
        except Exception as exc:  # noqa: BLE001 - CompileError, DistutilsExecError, missing headers
            self._skipped(ext.name, exc)

    def _skipped(self, what: str, exc: Exception) -> None:
        import os

        if os.environ.get("PYBEAT_REQUIRE_COMPILED") == "1":  # .ci/run: CI must have every one
            raise exc
        self.warn(f"pybeat: building {what} failed ({exc}); installing without it, as pure Python")


def _extensions() -> list:
    """The optional compiled hot path. Without Cython or a C compiler pybeat installs as pure
    Python and runs the same code paths the extensions mirror:
    - pybeat.decode._replay: the protocol-blind replay loop (its interfaces in _replay.pxd);
    - pybeat.protocols.dns.pairing: pairing.py itself, compiled (types in pairing.pxd);
    - pybeat.protocols.dns._fast: the DNS lane of the loop and the usual messages' parser;
    - pybeat.protocols.dns.detection._view: the detectors' reader of pre-encoded DNS events;
    - pybeat.protocols.dns.detection._detect: the dns detector's per-transaction steps;
    - pybeat.flows._fast: the flow table's per-frame hook (a PacketObserver of the loop);
    - pybeat.agent._batch: what a capture process keeps of each event for the detectors."""
    try:
        from Cython.Build import cythonize
        from setuptools import Extension
    except ImportError:
        return []
    args = ["-O2", *os.environ.get("PYBEAT_EXT_CFLAGS", "").split()]  # sanitizer builds add theirs
    link = os.environ.get("PYBEAT_EXT_LDFLAGS", "").split()
    exts = [
        Extension("pybeat.decode._replay", ["pybeat/decode/_replay.pyx"], libraries=["z"]),
        Extension("pybeat.protocols.dns.pairing", ["protocols/dns/pairing.py"]),
        Extension("pybeat.protocols.dns._fast", ["protocols/dns/_fast.pyx"]),
        Extension("pybeat.protocols.dns.detection._view", ["protocols/dns/detection/_view.pyx"]),
        Extension("pybeat.protocols.dns.detection._detect", ["protocols/dns/detection/_detect.pyx"]),
        Extension("pybeat.flows._fast", ["pybeat/flows/_fast.pyx"]),
        Extension("pybeat.agent._batch", ["pybeat/agent/_batch.pyx"]),
    ]
    for ext in exts:
        ext.optional = True
        ext.extra_compile_args = args
        ext.extra_link_args = link
    return cythonize(exts, language_level=3, quiet=True, include_path=[".", _pxd_tree()])


def _pxd_tree() -> str:
    """A tree where cimport finds the .pxd files of the mapped packages under their installed
    names (pybeat/protocols/dns/pairing.pxd lives in protocols/dns/)."""
    root = os.path.join("build", "pxd")
    for name, folder in MAPPED.items():
        for dirpath, _dirs, files in os.walk(folder):
            target = os.path.join(root, *name.split("."), os.path.relpath(dirpath, folder))
            for fname in files:
                if fname.endswith(".pxd"):
                    os.makedirs(target, exist_ok=True)
                    shutil.copyfile(os.path.join(dirpath, fname), os.path.join(target, fname))
    for dirpath, _dirs, _files in os.walk(os.path.join(root, "pybeat")):
        open(os.path.join(dirpath, "__init__.pxd"), "a").close()
    return root


# Generated C and an in-place build (pip install -e) are not data: build_ext makes the module.
exclude_package_data = {"pybeat": ["*.c", "*.so"], "pybeat.decode": ["*.c", "*.so"],
                        "pybeat.protocols.dns": ["*.c", "*.so"], "pybeat.protocols.dns.detection": ["*.c", "*.so"]}

setup(packages=packages, package_dir=package_dir, package_data=package_data,
      exclude_package_data=exclude_package_data, ext_modules=_extensions(), cmdclass={"build_ext": OptionalBuildExt})
