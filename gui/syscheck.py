"""Before Qt starts on Linux: are the system libraries its X11 (xcb) platform plugin needs installed?

Qt's own failure ("Could not load the Qt platform plugin "xcb"") names at most one library and no package. This runs
`ldd` on the plugin and on the Qt library behind it, and names the Debian/Ubuntu packages of every library not found.
It imports no Qt module, so it can run where Qt itself would abort. `python -m gui.syscheck` exits 1 when something
is missing (`make run` calls it).
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

# soname prefix -> Debian/Ubuntu package (the libraries PySide6's xcb plugin links, found with ldd on this plugin)
PACKAGES = {
    "libxcb-cursor.so": "libxcb-cursor0",
    "libxcb-icccm.so": "libxcb-icccm4",
    "libxcb-keysyms.so": "libxcb-keysyms1",
    "libxcb-image.so": "libxcb-image0",
    "libxcb-randr.so": "libxcb-randr0",
    "libxcb-render-util.so": "libxcb-render-util0",
    "libxcb-render.so": "libxcb-render0",
    "libxcb-shape.so": "libxcb-shape0",
    "libxcb-shm.so": "libxcb-shm0",
    "libxcb-sync.so": "libxcb-sync1",
    "libxcb-util.so": "libxcb-util1",
    "libxcb-xfixes.so": "libxcb-xfixes0",
    "libxcb-xkb.so": "libxcb-xkb1",
    "libxcb.so": "libxcb1",
    "libxkbcommon-x11.so": "libxkbcommon-x11-0",
    "libxkbcommon.so": "libxkbcommon0",
    "libX11-xcb.so": "libx11-xcb1",
    "libX11.so": "libx11-6",
    "libEGL.so": "libegl1",
    "libGL.so": "libgl1",
    "libGLX.so": "libglx0",
    "libGLdispatch.so": "libglvnd0",
    "libOpenGL.so": "libopengl0",
    "libfontconfig.so": "libfontconfig1",
    "libfreetype.so": "libfreetype6",
    "libdbus-1.so": "libdbus-1-3",
    "libglib-2.0.so": "libglib2.0-0",
    "libgthread-2.0.so": "libglib2.0-0",
}
# Everything the README tells a Debian/Ubuntu user to install (the packages above that a minimal system may lack).
README_PACKAGES = (
    "libxcb-cursor0 libxcb-icccm4 libxcb-keysyms1 libxcb-image0 libxcb-randr0 libxcb-render-util0 libxcb-shape0 "
    "libxcb-xfixes0 libxcb-xkb1 libxkbcommon-x11-0 libx11-xcb1 libegl1 libgl1 libfontconfig1 libdbus-1-3"
)


def qt_dir() -> Path | None:
    spec = importlib.util.find_spec("PySide6")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / "Qt"


def missing_libraries(files: list[Path]) -> list[str]:
    """Sonames that `ldd` reports as "not found" for any of `files` (sorted, each once)."""
    missing: set[str] = set()
    for f in files:
        out = subprocess.run(["ldd", str(f)], capture_output=True, text=True, check=False).stdout
        missing.update(re.findall(r"^\s*(\S+) => not found", out, re.MULTILINE))
    return sorted(missing)


def packages_for(sonames: list[str]) -> list[str]:
    """The Debian/Ubuntu packages that provide `sonames` (a soname without a known package is given as is)."""
    found = []
    for so in sonames:
        prefix = so.split(".so")[0] + ".so"
        pkg = PACKAGES.get(prefix, so)
        if pkg not in found:
            found.append(pkg)
    return found


def check() -> str | None:
    """None when the xcb plugin can load (or the check does not apply); otherwise a message naming the packages."""
    if not sys.platform.startswith("linux") or shutil.which("ldd") is None:
        return None
    platform = os.environ.get("QT_QPA_PLATFORM", "").split(";")[0]
    if platform not in ("xcb", "") or (not platform and os.environ.get("WAYLAND_DISPLAY")):
        return None  # offscreen, wayland, vnc...: the xcb plugin is not used
    qt = qt_dir()
    if qt is None:
        return None
    files = [p for p in (qt / "plugins" / "platforms" / "libqxcb.so", *sorted((qt / "lib").glob("libQt6XcbQpa.so*")))
             if p.is_file()]
    missing = missing_libraries(files)
    if not missing:
        return None
    pkgs = packages_for(missing)
    return (f"The desktop app cannot open a window: Qt needs system libraries that are not installed "
            f"({', '.join(missing)}).\nOn Debian/Ubuntu install them with:\n"
            f"    sudo apt-get install {' '.join(pkgs)}")


def main() -> int:
    message = check()
    if message:
        print(message, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
