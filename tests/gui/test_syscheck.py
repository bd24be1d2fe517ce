"""`make run`'s check for the system libraries Qt's X11 plugin needs: real ldd on the installed PySide6 plugin."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys

import pytest

pytest.importorskip("PySide6")
pytestmark = [pytest.mark.gui, pytest.mark.skipif(not sys.platform.startswith("linux") or not shutil.which("ldd"),
                                                 reason="ldd-based check, Linux only")]

from gui import syscheck  # noqa: E402
from tests.helpers.scripts import SCRIPTS  # noqa: E402


def _plugin_files():
    qt = syscheck.qt_dir()
    return [qt / "plugins" / "platforms" / "libqxcb.so", *sorted((qt / "lib").glob("libQt6XcbQpa.so*"))]


def _linked(files) -> set[str]:
    out = "".join(subprocess.run(["ldd", str(f)], capture_output=True, text=True).stdout for f in files)
    return set(re.findall(r"^\s*(\S+\.so\S*) =>", out, re.MULTILINE))


def test_every_x11_library_the_plugin_links_has_a_package():
    """The table covers each X11/GL/font library the plugin links, so a missing one is always named by package."""
    ours = {so for so in _linked(_plugin_files()) if re.match(r"lib(xcb|X11|xkb|EGL|GL|fontconfig|dbus)", so)}
    assert ours, "ldd listed none of the X11 libraries: is this the xcb plugin?"
    unknown = [so for so in ours if syscheck.packages_for([so]) == [so]]
    assert not unknown


def test_packages_named_for_missing_sonames():
    assert syscheck.packages_for(["libxcb-icccm.so.4", "libxcb-keysyms.so.1", "libxcb-cursor.so.0"]) == [
        "libxcb-icccm4", "libxcb-keysyms1", "libxcb-cursor0"]
    assert syscheck.packages_for(["libgthread-2.0.so.0", "libglib-2.0.so.0"]) == ["libglib2.0-0"]
    assert syscheck.packages_for(["libunknown.so.3"]) == ["libunknown.so.3"]  # named as is, never dropped


def test_check_agrees_with_ldd(monkeypatch):
    monkeypatch.setenv("QT_QPA_PLATFORM", "xcb")
    missing = syscheck.missing_libraries(_plugin_files())
    message = syscheck.check()
    if missing:
        assert message and "sudo apt-get install" in message
        for pkg in syscheck.packages_for(missing):
            assert pkg in message
    else:
        assert message is None
    monkeypatch.setenv("QT_QPA_PLATFORM", "offscreen")  # the xcb plugin is not used: nothing to check
    assert syscheck.check() is None


def test_readme_names_the_packages():
    readme = (SCRIPTS.parent / "README.md").read_text("utf-8")
    for pkg in syscheck.README_PACKAGES.split():
        assert pkg in readme
