"""The built wheel works on its own: installed in a clean virtualenv, away from the checkout,
``chuk-admin migrate`` finds the alembic revisions shipped inside it and a put/get round trip
works on the CLI's default store. (Dependencies come from PyPI.)"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.slow


def _run(
    *args: str | Path, cwd: Path, env: dict[str, str] | None = None, input: bytes | None = None, timeout: float = 180
) -> subprocess.CompletedProcess[bytes]:
    result = subprocess.run(
        [str(a) for a in args], cwd=cwd, env=env, input=input, capture_output=True, timeout=timeout, check=False
    )
    assert result.returncode == 0, (
        f"{' '.join(map(str, args))} failed ({result.returncode}):\n"
        f"{result.stdout.decode(errors='replace')[-3000:]}\n{result.stderr.decode(errors='replace')[-3000:]}"
    )
    return result


def test_the_wheel_ships_its_migrations_and_a_working_chuk_admin(tmp_path: Path) -> None:
    dist, work = tmp_path / "dist", tmp_path / "work"
    work.mkdir()
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("ARTIFACT_", "PYTHON", "CHUK_", "VIRTUAL_ENV"))}
    clean["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    _run(sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", dist, ROOT, cwd=work, env=clean)
    (wheel,) = dist.glob("chuk_artifacts-*.whl")

    venv = tmp_path / "venv"
    _run(sys.executable, "-m", "venv", venv, cwd=work, env=clean)
    bin_dir = venv / ("Scripts" if os.name == "nt" else "bin")
    _run(bin_dir / "python", "-m", "pip", "install", "-q", wheel, cwd=work, env=clean)

    env = {**clean, "CHUK_ARTIFACTS_HOME": str(tmp_path / "home")}
    admin = bin_dir / "chuk-admin"
    location = (
        _run(
            bin_dir / "python",
            "-c",
            "import chuk_artifacts.migrate as m; print(m.script_location())",
            cwd=work,
            env=env,
        )
        .stdout.decode()
        .strip()
    )
    assert Path(location).name == "_migrations" and str(venv) in location and str(ROOT) not in location

    upgraded = _run(admin, "migrate", "upgrade", cwd=work, env=env).stdout.decode()
    head = _run(admin, "migrate", "current", cwd=work, env=env).stdout.decode()
    assert "(head)" in head and head.split()[0] in upgraded
    assert (tmp_path / "home" / "catalog.db").is_file()

    payload = bytes(range(256)) * 512
    (work / "data.bin").write_bytes(payload)
    artifact_id = _run(admin, "put", "data.bin", "--meta", "origin=wheel", cwd=work, env=env).stdout.decode().strip()
    _run(admin, "get", artifact_id, "-o", "copy.bin", cwd=work, env=env)
    assert (work / "copy.bin").read_bytes() == payload
    piped = _run(admin, "put", "-", cwd=work, env=env, input=b"from stdin").stdout.decode().strip()
    assert _run(admin, "get", piped, cwd=work, env=env).stdout == b"from stdin"
    assert artifact_id in _run(admin, "ls", cwd=work, env=env).stdout.decode()
    _run(admin, "fsck", "--verify", cwd=work, env=env)
