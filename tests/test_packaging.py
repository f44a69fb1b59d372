"""The installable wheel holds the whole product: every module and template of the source tree.

The wheel is what a bureau installs outside this checkout. It is built here without build isolation (the
dev extra brings setuptools; no network), unpacked, and every module of the source tree is imported from
the unpacked copy in a fresh interpreter run outside the checkout, so a package the build configuration
leaves out fails here rather than on a production machine.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("engine", "profiles", "notifier", "sample_data", "workbench")
DATA = ("notifier/templates", "workbench/templates", "workbench/static")

pytestmark = pytest.mark.slow


def _source_modules() -> list[str]:
    """Every importable module of the product's packages, as the source tree holds them."""
    modules = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            if not (path.parent / "__init__.py").exists():
                continue
            parts = path.relative_to(ROOT).with_suffix("").parts
            modules.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return modules


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    source = out / "source"  # a copy: the build's own build/ and egg-info stay out of the checkout
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, source / name)
    for package in PACKAGES:
        shutil.copytree(ROOT / package, source / package, ignore=shutil.ignore_patterns("__pycache__"))
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out),
         str(source)],
        capture_output=True, text=True, timeout=600)
    assert build.returncode == 0, build.stderr[-3000:]
    (built,) = out.glob("zhixiang-*.whl")
    return built


def test_the_wheel_holds_every_module_and_template(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    missing = [m for m in _source_modules()
               if f"{m.replace('.', '/')}.py" not in names and f"{m.replace('.', '/')}/__init__.py" not in names]
    assert not missing, f"modules left out of the wheel: {missing}"
    for folder in DATA:
        files = [p.relative_to(ROOT).as_posix() for p in (ROOT / folder).rglob("*") if p.is_file()]
        assert files, folder
        assert not [f for f in files if f not in names], f"files of {folder} left out of the wheel"


def test_every_module_imports_from_the_installed_wheel(wheel: Path, tmp_path: Path) -> None:
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    modules = _source_modules()
    probe = (
        "import importlib, sys\n"
        f"site = {str(site)!r}\n"
        "failed = []\n"
        f"for name in {modules!r}:\n"
        "    module = importlib.import_module(name)\n"
        "    if not (module.__file__ or '').startswith(site):\n"
        "        failed.append(f'{name} came from {module.__file__}')\n"
        "print('\\n'.join(failed))\n"
    )
    # run outside the checkout with the wheel first on the path: a module missing from the wheel cannot
    # be found in the source tree instead
    result = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, capture_output=True, text=True,
                            env={"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
                            timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip() == "", result.stdout
