"""Each package builds as a standalone wheel that depends only on rlcore and public libraries, and imports alone."""

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = sorted(p.name for p in (ROOT / "packages").iterdir() if (p / "pyproject.toml").is_file())
PUBLIC_OK = {"rlcore"}


def _build(src: Path, out: Path) -> Path:
    uv = shutil.which("uv")
    if uv is None:
        raise RuntimeError("the install test needs `uv` on PATH (CI installs it in .ci/run)")
    subprocess.run([uv, "build", "--wheel", "--quiet", "-o", str(out), str(src)], check=True, cwd=ROOT)
    (wheel,) = [w for w in out.glob("*.whl") if w.name.split("-")[0].replace("_", "-") == _dist_name(src)]
    return wheel


def _dist_name(src: Path) -> str:
    import tomllib

    return tomllib.loads((src / "pyproject.toml").read_text())["project"]["name"].replace("_", "-")


def _requires(wheel: Path) -> list[str]:
    with zipfile.ZipFile(wheel) as z:
        meta = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
        lines = z.read(meta).decode().splitlines()
    return [ln.split(":", 1)[1].strip() for ln in lines if ln.startswith("Requires-Dist:")]


@pytest.fixture(scope="module")
def rlcore_wheel(tmp_path_factory):
    return _build(ROOT / "shared", tmp_path_factory.mktemp("rlcore"))


@pytest.mark.slow
@pytest.mark.parametrize("pkg", PACKAGES)
def test_package_wheel_installs_alone(pkg, tmp_path, rlcore_wheel):
    wheels = [rlcore_wheel, _build(ROOT / "packages" / pkg, tmp_path)]
    for req in _requires(wheels[1]):
        assert "@" not in req and "file:" not in req, f"{pkg} depends on a local path: {req}"
    assert any(r.startswith("rlcore") for r in _requires(wheels[1]))
    target = tmp_path / "site"
    for w in wheels:  # dependencies come from the current environment; only our code comes from the wheels
        with zipfile.ZipFile(w) as z:
            z.extractall(target)
    code = f"import {pkg}, {pkg}.cli, rlcore, sys; assert {pkg}.__file__.startswith({str(target)!r}), {pkg}.__file__"
    env = {"PYTHONPATH": str(target), "HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"}
    r = subprocess.run([sys.executable, "-I", "-c", f"import sys; sys.path.insert(0, {str(target)!r}); " + code],
                       capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr[-2000:]


def test_every_package_has_the_same_shape():
    for pkg in PACKAGES:
        src = ROOT / "packages" / pkg / "src" / pkg
        for f in ("__init__.py", "config.py", "cli.py"):
            assert (src / f).is_file(), f"packages/{pkg}: missing src/{pkg}/{f}"
        readme = (ROOT / "packages" / pkg / "README.md").read_text()
        assert "## Fidelity" in readme, f"packages/{pkg}/README.md has no Fidelity table"
        assert (ROOT / "packages" / pkg / "tests").is_dir()
