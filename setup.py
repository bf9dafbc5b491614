"""Map the repository's top-level protocols/ and outputs/ folders into the pybeat namespace.

A package named "outputs" exists on PyPI, so nothing may install under that name: protocols/
installs as pybeat.protocols and outputs/ as pybeat.outputs. New plugin packages are found
automatically (any folder with an __init__.py).
"""

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


def _extensions() -> list:
    """The optional compiled hot path (pybeat/_speedups.pyx). Without Cython or a C compiler
    pybeat installs as pure Python and runs the same code paths the extension mirrors."""
    try:
        from Cython.Build import cythonize
        from setuptools import Extension
    except ImportError:
        return []
    ext = Extension("pybeat._speedups", ["pybeat/_speedups.pyx"], optional=True,
                    extra_compile_args=["-O2"])
    return cythonize([ext], language_level=3, quiet=True)


# Generated C and an in-place build (pip install -e) are not data: build_ext makes the module.
exclude_package_data = {"pybeat": ["_speedups.c", "*.so"]}

setup(packages=packages, package_dir=package_dir, package_data=package_data,
      exclude_package_data=exclude_package_data, ext_modules=_extensions())
