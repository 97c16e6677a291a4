"""``build.system_packages``: Debian packages the model needs on the host.

Without Docker the model shares the host's system libraries, so Vendo checks them
(dpkg) instead of installing them into an image. Missing packages are installed with
apt-get only when ``install_system_packages`` allows it; otherwise the build fails with
the command to run (``strict_system_packages``, on by default: a model that loads
without its ffmpeg fails later, at its first prediction), or only warns when that
setting is off. Packages that this distribution does not have at all
(``libgl1-mesa-glx`` on Debian 12, say) are a warning either way: no install command
helps there, and public models often list a package their code no longer needs.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass

from vendo.errors import BuildError

__all__ = ["SystemPackages", "check_system_packages"]


@dataclass(frozen=True)
class SystemPackages:
    installed: tuple[str, ...]
    missing: tuple[str, ...]  # this distribution has them; they are not installed
    unknown: tuple[str, ...]  # this distribution has no such package
    warnings: tuple[str, ...]


def _dpkg_installed(names: tuple[str, ...]) -> set[str]:
    # One dpkg-query for all names; unknown names only add a line on stderr.
    out = subprocess.run(
        ["dpkg-query", "-W", "-f=${Package} ${Status}\n", *names], capture_output=True, text=True
    )
    found = set()
    for line in out.stdout.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[-1] == "installed":
            found.add(parts[0].split(":")[0])
    return found


def _apt_has(name: str) -> bool:
    """Whether apt knows an installable candidate for ``name``."""
    if shutil.which("apt-cache") is None:
        return True  # cannot tell; do not claim it is absent
    out = subprocess.run(["apt-cache", "policy", name], capture_output=True, text=True)
    for line in out.stdout.splitlines():
        line = line.strip()
        if line.startswith("Candidate:"):
            return line.split(":", 1)[1].strip() not in ("", "(none)")
    return False


def _install(names: list[str], log: Callable[[str], None], updated: bool = False) -> None:
    command = ["apt-get", "install", "-y", "--no-install-recommends", *names]
    log("$ " + " ".join(command))
    env = {"DEBIAN_FRONTEND": "noninteractive", "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
    out = subprocess.run(command, capture_output=True, text=True, env=env)
    for line in (out.stdout + out.stderr).splitlines():
        log(line)
    if out.returncode != 0 and not updated:
        # Stale or missing package lists are the usual cause on a fresh host.
        log("$ apt-get update")
        update = subprocess.run(["apt-get", "update"], capture_output=True, text=True, env=env)
        for line in (update.stdout + update.stderr).splitlines():
            log(line)
        _install(names, log, updated=True)
        return
    if out.returncode != 0:
        tail = "\n".join((out.stdout + out.stderr).splitlines()[-20:])
        raise BuildError(
            f"build.system_packages: apt-get install failed for {' '.join(names)}", tail
        )


def check_system_packages(
    names: tuple[str, ...],
    *,
    install: bool = False,
    strict: bool = True,
    log: Callable[[str], None] = lambda line: None,
) -> SystemPackages:
    if not names:
        return SystemPackages((), (), (), ())
    if shutil.which("dpkg-query") is None:
        note = (
            "build.system_packages: this host has no dpkg, so "
            f"{' '.join(names)} could not be checked; make sure they are installed"
        )
        return SystemPackages((), (), (), (note,))
    present = _dpkg_installed(names)
    installed = [n for n in names if n in present]
    absent = [n for n in names if n not in installed]
    unknown = [n for n in absent if not _apt_has(n)]
    missing = [n for n in absent if n not in unknown]
    if missing and install:
        _install(missing, log)
        installed += missing
        missing = []
    warnings = []
    if unknown:
        warnings.append(
            f"build.system_packages: {', '.join(unknown)} does not exist in this "
            "distribution's package lists (apt-cache policy shows no candidate); find "
            "the package that replaces it here, or the model may fail to load"
        )
    if missing:
        sudo = "sudo " if hasattr(os, "geteuid") and os.geteuid() != 0 else ""
        problem = (
            f"build.system_packages: {', '.join(missing)} not installed on this host; "
            f"install with: {sudo}apt-get install -y {' '.join(missing)}"
        )
        if strict:
            raise BuildError(
                f"{problem} (or set VENDO_INSTALL_SYSTEM_PACKAGES=1 to let builds install "
                "them, or VENDO_STRICT_SYSTEM_PACKAGES=0 to build with a warning instead)"
            )
        warnings.append(f"{problem} (or set VENDO_INSTALL_SYSTEM_PACKAGES=1 to let builds do it)")
    return SystemPackages(tuple(installed), tuple(missing), tuple(unknown), tuple(warnings))
