"""The distribution: a name of its own on the package index, the ``kloudless`` import package only,
a wheel and an sdist that ``twine check`` accepts, and an editable install without warnings.

These build for real (``python -m build``, ``pip install -e`` into a throw-away virtual
environment); pip takes what it needs from its cache or the package index, as ``make`` does.
"""

from __future__ import annotations

import email
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest
import tomllib

ROOT = Path(__file__).resolve().parents[2]
BIN_DIR = Path(sys.executable).parent
BUILD_TIMEOUT = 600
#: What setuptools prints when it has to guess the layout of a flat checkout (issue #18).
LAYOUT_WARNINGS = ("Please be careful with folders", "flat-layout", "Package would be ignored")

if sys.version_info < (3, 11):  # pragma: no cover - tomllib; CI runs 3.11+
    pytest.skip("reads pyproject.toml with tomllib (Python 3.11+)", allow_module_level=True)


def _run(argv: list[str], cwd: Path) -> str:
    result = subprocess.run(
        argv,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=BUILD_TIMEOUT,
        check=False,
    )
    assert result.returncode == 0, f"{' '.join(argv)} failed:\n{result.stdout}"
    return result.stdout


def test_the_distribution_name_is_not_the_defunct_one() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert project["name"] == "kloudless-compat"
    # The dev extra refers to the project by its own name, so `pip install -e .[dev]` resolves.
    assert all(not dep.startswith("kloudless[") for dep in project["optional-dependencies"]["dev"])
    readme = (ROOT / "README.rst").read_text(encoding="utf-8")
    assert 'pip install "kloudless-compat[server,cli]"' in readme
    assert "kloudless[server" not in readme


def test_wheel_and_sdist_build_and_pass_twine(tmp_path: Path) -> None:
    log = _run([sys.executable, "-m", "build", "--outdir", str(tmp_path), str(ROOT)], ROOT)
    for needle in LAYOUT_WARNINGS:
        assert needle not in log
    wheels = list(tmp_path.glob("kloudless_compat-*-py3-none-any.whl"))
    sdists = list(tmp_path.glob("kloudless_compat-*.tar.gz"))
    assert len(wheels) == 1 and len(sdists) == 1, sorted(p.name for p in tmp_path.iterdir())
    checked = _run(
        [str(BIN_DIR / "twine"), "check", "--strict", str(wheels[0]), str(sdists[0])], ROOT
    )
    assert checked.count("PASSED") == 2

    with zipfile.ZipFile(wheels[0]) as wheel:
        names = wheel.namelist()
        info_dir = next(n.split("/")[0] for n in names if n.endswith(".dist-info/METADATA"))
        metadata = email.message_from_bytes(wheel.read(f"{info_dir}/METADATA"))
        entry_points = wheel.read(f"{info_dir}/entry_points.txt").decode()
    # Only the import package ships: no tests/, docs/, examples/ or benchmarks/ at the top level.
    assert {n.split("/")[0] for n in names} == {"kloudless", info_dir}
    assert "kloudless/py.typed" in names and "kloudless/cli/__init__.py" in names
    assert metadata["Name"] == "kloudless-compat"
    assert {"server", "cli", "caldav"} <= set(metadata.get_all("Provides-Extra") or [])
    assert "kloudless = kloudless.cli:main" in entry_points


def test_editable_install_prints_no_layout_warning(tmp_path: Path) -> None:
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    python = env_dir / "bin" / "python"
    # As the Makefile does: recent pips show the build backend's warnings, older ones hide them.
    _run([str(python), "-m", "pip", "install", "--quiet", "--upgrade", "pip"], tmp_path)
    log = _run([str(python), "-m", "pip", "install", "--no-deps", "-e", str(ROOT)], tmp_path)
    for needle in LAYOUT_WARNINGS:
        assert needle not in log, log
    # The editable install finds the checkout's package, and nothing else of the checkout.
    found = _run(
        [str(python), "-c", "import importlib.util as u; print(u.find_spec('kloudless').origin)"],
        tmp_path,
    )
    assert Path(found.strip()) == ROOT / "kloudless" / "__init__.py"
