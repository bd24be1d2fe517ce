"""The catalog's schema version is checked on open: older catalogs are migrated step by step, newer ones refused."""

import sqlite3

import pytest

from edgeret import catalog as catalog_module
from edgeret.catalog import SCHEMA_VERSION, Catalog, add_column
from edgeret.cli import main
from edgeret.errors import LibraryError


def _version(path) -> str:
    with sqlite3.connect(path) as db:
        return db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0]


def test_a_new_catalog_is_at_the_current_version(tmp_path):
    Catalog(tmp_path / "c.sqlite").close()
    assert _version(tmp_path / "c.sqlite") == str(SCHEMA_VERSION) and len(catalog_module.MIGRATIONS) == SCHEMA_VERSION


def test_a_catalog_from_a_newer_edgeret_is_refused_with_a_message(tmp_path, photos, tiny_encoder, capsys):
    lib = tmp_path / "lib"
    assert main(["index", str(photos), "--library", str(lib), "--encoder", str(tiny_encoder), "--json"]) == 0
    with sqlite3.connect(lib / "catalog.sqlite") as db:
        db.execute("UPDATE meta SET value=? WHERE key='schema_version'", (str(SCHEMA_VERSION + 1),))
    capsys.readouterr()
    for argv in (["status"], ["index"], ["search", str(photos / "a" / "img00.jpg")]):
        assert main([*argv, "--library", str(lib)]) == LibraryError.exit_code
        err = capsys.readouterr().err
        assert "written by a newer edgeret" in err and "Traceback" not in err
    assert _version(lib / "catalog.sqlite") == str(SCHEMA_VERSION + 1)  # left as it was
    with pytest.raises(LibraryError, match="newer edgeret"):
        Catalog(lib / "catalog.sqlite", readonly=True)


def test_older_catalogs_are_migrated_once_and_each_step_is_idempotent(tmp_path, monkeypatch):
    path = tmp_path / "c.sqlite"
    with sqlite3.connect(path) as db:  # a catalog from before versioning: tables, no version
        catalog_module.run_script(db, catalog_module._SCHEMA)
        db.execute("INSERT INTO images(path, size, mtime_ns, status, indexed_at) VALUES ('/p/a.jpg', 1, 1, 'ok', 0)")
    steps = []

    def add_phash(db):  # what a later release appends: a new column
        steps.append("phash")
        add_column(db, "images", "phash", "INTEGER")

    monkeypatch.setattr(catalog_module, "MIGRATIONS", [*catalog_module.MIGRATIONS, add_phash])
    monkeypatch.setattr(catalog_module, "SCHEMA_VERSION", SCHEMA_VERSION + 1)
    monkeypatch.setattr(catalog_module, "_writable", lambda p: False)
    with pytest.raises(LibraryError, match="needs upgrading"):
        Catalog(path, readonly=True)  # on read-only media a reader cannot migrate, and says so
    assert steps == []
    monkeypatch.undo()
    monkeypatch.setattr(catalog_module, "MIGRATIONS", [*catalog_module.MIGRATIONS, add_phash])
    monkeypatch.setattr(catalog_module, "SCHEMA_VERSION", SCHEMA_VERSION + 1)
    c = Catalog(path, readonly=True)  # where it can write, a reader upgrades first, then reads
    assert c.schema_version() == SCHEMA_VERSION + 1 and steps == ["phash"]
    assert [r[0] for r in c.db.execute("SELECT path FROM images")] == ["/p/a.jpg"]  # nothing lost
    c.close()
    Catalog(path).close()
    assert steps == ["phash"]  # an up-to-date catalog runs nothing
    with sqlite3.connect(path) as db:  # a racing process re-applying the step finds the column there
        add_phash(db)
        assert "phash" in {row[1] for row in db.execute("PRAGMA table_info(images)")}


def test_a_failing_migration_leaves_the_catalog_at_its_version(tmp_path, monkeypatch):
    path = tmp_path / "c.sqlite"
    Catalog(path).close()

    def broken(db):
        db.execute("CREATE TABLE broken_step (id INTEGER)")
        raise sqlite3.OperationalError("disk full")

    monkeypatch.setattr(catalog_module, "MIGRATIONS", [*catalog_module.MIGRATIONS, broken])
    monkeypatch.setattr(catalog_module, "SCHEMA_VERSION", SCHEMA_VERSION + 1)
    with pytest.raises(sqlite3.OperationalError):
        Catalog(path)
    with sqlite3.connect(path) as db:
        assert not db.execute("SELECT 1 FROM sqlite_master WHERE name='broken_step'").fetchone()
    assert _version(path) == str(SCHEMA_VERSION)
