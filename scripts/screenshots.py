"""Screenshots of the desktop app in a real X server (Xvfb + openbox), for docs/ and the README.

For each screen size it starts Xvfb and openbox, then runs this script again inside that display to take:
  first-start   a new user's first window: no models, empty library (the welcome page)
  results       the devset indexed (mnv2-gem), a query re-ranked by spatial verification: verdicts, compare view
  compare       the same result in the full-window preview (Space)
with `import -window root`. Needs: apt-get install xvfb openbox imagemagick (and Qt's xcb libraries, see README).
Uses ../shared (EDGERET_SHARED) when present; the first-start shot needs nothing.

    python scripts/screenshots.py [--out docs/screenshots] [--sizes 1366x768,1920x1080]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from edgeret.testing.shared import DEVSET, MNV2, SHARED  # noqa: E402

QUERY = "images/dev_0000.jpg"  # a real multi-view object of the devset (group dev_r02)


def drive(sizes: list[str], out: Path) -> int:
    """Start a display per size and take the shots in a child process on it."""
    for tool in ("Xvfb", "openbox", "import"):
        if shutil.which(tool) is None:
            print(f"{tool} is missing: apt-get install xvfb openbox imagemagick", file=sys.stderr)
            return 1
    out.mkdir(parents=True, exist_ok=True)
    for n, size in enumerate(sizes):
        display = f":{90 + n}"
        xvfb = subprocess.Popen(["Xvfb", display, "-screen", "0", f"{size}x24", "-nolisten", "tcp"],
                                stderr=subprocess.DEVNULL)
        time.sleep(1.0)
        env = {**os.environ, "DISPLAY": display, "QT_QPA_PLATFORM": "xcb"}
        wm = subprocess.Popen(["openbox"], env=env, stderr=subprocess.DEVNULL)
        time.sleep(0.5)
        try:
            subprocess.run([sys.executable, __file__, "--take", size, "--out", str(out)], env=env, check=True,
                           timeout=900)
        finally:
            wm.terminate()
            xvfb.terminate()
            wm.wait()
            xvfb.wait()
    return 0


def _settle(app, seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        app.processEvents()
        time.sleep(0.02)


def _wait(app, condition, timeout: float = 300) -> None:
    end = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > end:
            raise TimeoutError("the app did not get there in time")
        app.processEvents()
        time.sleep(0.02)


def _shot(app, path: Path) -> None:
    _settle(app, 1.5)
    subprocess.run(["import", "-window", "root", str(path)], check=True)
    print("wrote", path)


def take(size: str, out: Path) -> int:
    """Run inside the display: the four scenes, each in a fresh window and home."""
    from PySide6.QtWidgets import QApplication

    app = QApplication(["edgeret"])
    app.setApplicationName("edgeret")
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["EDGERET_MODELS"] = str(Path(tmp) / "models")  # a new user: no model installed
        os.environ["EDGERET_CONFIG"] = str(Path(tmp) / "config.toml")
        _first_start(app, Path(tmp), out / f"first-start-{size}.png")
        if (DEVSET / QUERY).is_file() and (MNV2 / "model.onnx").is_file():
            _results(app, Path(tmp), out, size)
            _duplicates(app, Path(tmp), out / f"duplicates-{size}.png")
        else:
            print(f"no shared devset at {SHARED}: results and compare shots skipped")
    return 0


def _window(tmp: Path, name: str, encoder: str | None = None):
    from edgeret.settings import Settings
    from edgeret.thumbnails import ThumbnailCache
    from gui.main_window import MainWindow

    w = MainWindow(Settings(library=tmp / name, encoder=encoder, threads=2), ThumbnailCache(tmp / "thumbs"))
    w.showMaximized()
    return w


def _first_start(app, tmp: Path, path: Path) -> None:
    w = _window(tmp, "new-library")
    _settle(app, 2)
    _shot(app, path)
    w.shutdown()
    w.close()


def _results(app, tmp: Path, out: Path, size: str) -> None:
    w = _window(tmp, "devset", encoder=str(MNV2))
    w.add_folder(str(DEVSET / "images"))
    _wait(app, lambda: w.index_worker is None and w.photo_model.rowCount() > 100)
    w.settings_panel.set_reranker("sv")
    w.settings_panel.k.setValue(20)
    done = []
    w.query.finished_query.connect(lambda gen, state: done.append(gen == w.gen))
    w.query_path(str(DEVSET / QUERY))
    _wait(app, lambda: any(done))
    _wait(app, lambda: w.compare.pair is not None)
    w.results_grid.setFocus()
    w.results_grid.setCurrentIndex(w.result_model.index(1))  # a real re-shot of the object, not a near copy
    path = w.result_model.result(1).path
    _wait(app, lambda: w.results.shown_path == path and "points match" in w.compare.headline.text())
    _shot(app, out / f"results-{size}.png")
    w.toggle_preview()
    _settle(app, 1)
    _shot(app, out / f"compare-{size}.png")
    w.shutdown()
    w.close()


def _duplicates(app, tmp: Path, path: Path) -> None:
    """A folder of devset photos with versions of some (resized, converted, cropped) and a burst of re-shots."""
    from edgeret.testing.photos import make_variant

    photos = tmp / "dup-photos"
    photos.mkdir()
    for i, name in enumerate(sorted((DEVSET / "images").glob("*.jpg"))[:24]):
        shutil.copy(name, photos / name.name)
        if i < 3:
            for kind in ("resize50", "png", "crop5"):
                make_variant(name, kind, photos / f"{name.stem}-{kind}.jpg", seed=i)
    w = _window(tmp, "dups", encoder=str(MNV2))
    w.add_folder(str(photos))
    _wait(app, lambda: w.index_worker is None and w.photo_model.rowCount() >= 24)
    w.tabs.setCurrentIndex(w.duplicates_tab_index)
    w.duplicates.start()
    _wait(app, lambda: w.duplicates.worker is None and w.duplicates.group_list.count() > 0)
    w.duplicates.group_list.setCurrentRow(1)  # the first group (row 0 is its kind's heading)
    _settle(app, 3)
    _shot(app, path)
    w.shutdown()
    w.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots")
    ap.add_argument("--sizes", default="1366x768,1920x1080")
    ap.add_argument("--take", help=argparse.SUPPRESS)  # internal: run inside the display of this size
    args = ap.parse_args()
    if args.take:
        return take(args.take, args.out)
    return drive(args.sizes.split(","), args.out)


if __name__ == "__main__":
    sys.exit(main())
