"""Regional indexing with real parts: generated encoders and photos, real onnxruntime, SQLite and USearch."""

import shutil

import numpy as np
import pytest
from PIL import Image, ImageDraw

from edgeret import regions
from edgeret.duplicates import find_duplicates
from edgeret.errors import LibraryError
from edgeret.library import Library
from edgeret.testing.photos import blobs, make_photo

SCENE = (960, 640)
OBJECT_AT, OBJECT_SIDE = (555, 240), 380  # a fifth of the frame, inside one crop of the grid


def _object(side: int = OBJECT_SIDE, period: int = 95) -> Image.Image:
    """A three-colour checkerboard: a texture that no generated background has."""
    im = Image.new("RGB", (side, side))
    draw = ImageDraw.Draw(im)
    colours = [(20, 30, 200), (250, 220, 30), (230, 30, 60)]
    for x in range(0, side, period):
        for y in range(0, side, period):
            draw.rectangle((x, y, x + period - 1, y + period - 1), fill=colours[(x // period + 2 * (y // period)) % 3])
    return im


@pytest.fixture
def scenes(tmp_path):
    """20 large generated photos; in one of them (target.jpg) the object is pasted small."""
    root = tmp_path / "scenes"
    for i in range(1, 20):
        make_photo(root / f"bg{i:02d}.jpg", seed=100 + i, size=SCENE)
    target = make_photo(tmp_path / "base.jpg", seed=100, size=SCENE)
    with Image.open(target) as im:
        im = im.convert("RGB")
        im.paste(_object(), OBJECT_AT)
        im.save(root / "target.jpg", quality=92)
    return root


def _index(lib, encoder, roots=(), **kw):
    return lib.index(roots, encoder_spec=str(encoder), threads=1, batch_size=4, **kw)


def _names(hits):
    return [h.path.rsplit("/", 1)[-1] for h in hits]


@pytest.mark.parametrize("setting", ["grid", "dense"])
def test_a_small_object_is_found_by_its_regions_and_not_without(tmp_path, scenes, tiny_encoder, setting):
    query = _object()
    found = {}
    for name in ("off", setting):
        with Library(tmp_path / f"lib-{name}", writable=True) as lib:
            _index(lib, tiny_encoder, [scenes], regions=name)
            hits = lib.search_images([query], lib.load_encoder(str(tiny_encoder)), k=5)[0]
            found[name] = _names(hits)
            assert len(hits) == 5 and len(set(found[name])) == 5  # per photo, never per vector
    assert found["off"][0] != "target.jpg"  # the object is too small for the photo's own vector
    assert found[setting][0] == "target.jpg", found


def test_query_crops_find_a_clean_photo_from_a_busy_query_at_no_index_cost(tmp_path, tiny_encoder):
    """`query`: the busy photo is the query, the object's own photo is in the library; photos keep one vector."""
    library = tmp_path / "library"
    library.mkdir()
    for i in range(1, 20):
        blobs(200 + i, *SCENE).save(library / f"other{i:02d}.jpg", quality=92)
    _object(400).save(library / "object.jpg", quality=92)
    with Image.open(make_photo(tmp_path / "scene.jpg", seed=100, size=SCENE)) as im:
        query = im.convert("RGB")
    query.paste(_object(400), (540, 225))  # a sixth of the frame, within one crop of the query's grid
    found = {}
    with Library(tmp_path / "lib", writable=True) as lib:
        for name in ("off", "query"):  # the same stored vectors: the switch needs no re-index
            report = _index(lib, tiny_encoder, [library], regions=name)
            assert lib.regions.name == name and lib.status()["vectors_per_photo"] == 1.0
            assert report.indexed == (20 if name == "off" else 0)
            found[name] = _names(lib.search_images([query], lib.load_encoder(str(tiny_encoder)), k=3)[0])
        with pytest.raises(LibraryError, match="--reindex --regions grid"):
            _index(lib, tiny_encoder, regions="grid")
    assert "object.jpg" not in found["off"]
    assert found["query"][0] == "object.jpg", found


def test_the_setting_is_recorded_shown_and_a_change_needs_a_reindex(tmp_path, photos, tiny_encoder):
    with Library(tmp_path / "lib", writable=True) as lib:
        _index(lib, tiny_encoder, [photos], regions="grid")
        st = lib.status()
        assert st["regions"] == "grid" and st["vectors_per_photo"] > 3
        assert st["index"]["size"] == round(st["vectors_per_photo"] * st["indexed"])
        before = lib.catalog.index_keys().tolist()
        _index(lib, tiny_encoder)  # no setting given: the library's own
        assert lib.status()["regions"] == "grid" and lib.catalog.index_keys().tolist() == before
        with pytest.raises(LibraryError, match="--reindex --regions off"):
            _index(lib, tiny_encoder, regions="off")
        assert lib.status()["regions"] == "grid" and lib.catalog.index_keys().tolist() == before  # nothing lost
        with pytest.raises(LibraryError, match="unknown regions setting 'tiles'"):
            _index(lib, tiny_encoder, regions="tiles")
        _index(lib, tiny_encoder, reindex=True, regions="off")
        st = lib.status()
        assert (st["regions"], st["vectors_per_photo"], lib.catalog.region_count()) == ("off", 1.0, 0)
        assert lib.catalog.db.execute("SELECT COUNT(*) FROM regions").fetchone()[0] == 0


def test_defaults_follow_the_encoder_kind_and_old_libraries_stay_off(tmp_path, photos, tiny_encoder,
                                                                     tiny_fmap_encoder):
    with Library(tmp_path / "fmap", writable=True) as lib:
        _index(lib, tiny_fmap_encoder, [photos])
        assert lib.regions == regions.default_for(lib.load_encoder().preprocess) == regions.SETTINGS["grid"]
        assert lib.status()["vectors_per_photo"] > 3
    with Library(tmp_path / "embed", writable=True) as lib:
        _index(lib, tiny_encoder, [photos])
        assert lib.regions == regions.default_for(lib.load_encoder().preprocess) == regions.SETTINGS["query"]
        assert lib.status()["vectors_per_photo"] == 1.0 and lib.catalog.region_count() == 0
    with Library(tmp_path / "old", writable=True) as lib:
        _index(lib, tiny_fmap_encoder, [photos], regions="off")
        lib.catalog.db.execute("DELETE FROM meta WHERE key IN ('regions', 'regions_id')")  # from before regions
        lib.catalog.db.commit()
        _index(lib, tiny_fmap_encoder)
        assert lib.regions.name == "off" and lib.catalog.region_count() == 0


def test_feature_map_crops_run_at_half_size_and_queries_split_the_same_way(tmp_path, photos, tiny_fmap_encoder):
    with Library(tmp_path / "lib", writable=True) as lib:
        _index(lib, tiny_fmap_encoder, [photos], regions="grid")
        encoder = lib.load_encoder()
        assert regions.crop_preprocess(encoder.preprocess).input_size == encoder.preprocess.input_size // 2
        key = lib.catalog.id_for_path(str(photos / "a" / "img03.jpg"))
        with Image.open(photos / "a" / "img03.jpg") as im:
            query = lib.query_vectors([im.convert("RGB")], encoder)[0]
        stored = lib.vectors_of(key)
        assert query.shape == stored.shape == (1 + len(regions.boxes(lib.regions, 320, 240)), encoder.dim)
        np.testing.assert_allclose(query, stored, atol=2e-3)  # f16 storage
        hits = lib.search_sets([stored], k=3)[0]
        assert hits[0].key == key and hits[0].score == pytest.approx(1.0, abs=2e-3)


def test_moves_twins_and_failures_keep_regions_in_step(tmp_path, photos, tiny_encoder):
    with Library(tmp_path / "lib", writable=True) as lib:
        _index(lib, tiny_encoder, [photos], regions="grid")
        key = lib.catalog.id_for_path(str(photos / "a" / "img02.jpg"))
        own = lib.catalog.regions_of(key)
        shutil.move(photos / "a" / "img02.jpg", photos / "b" / "moved.jpg")
        shutil.copy(photos / "a" / "img01.jpg", photos / "b" / "twin.jpg")
        (photos / "a" / "img04.jpg").write_bytes(b"broken")
        _index(lib, tiny_encoder)
        np.testing.assert_array_equal(lib.catalog.regions_of(key), own)  # moved: same row, same regions
        twin = lib.catalog.id_for_path(str(photos / "b" / "twin.jpg"))
        original = lib.catalog.id_for_path(str(photos / "a" / "img01.jpg"))
        np.testing.assert_array_equal(lib.catalog.regions_of(twin), lib.catalog.regions_of(original))
        failed = lib.catalog.id_for_path(str(photos / "a" / "img04.jpg"))
        assert lib.catalog.regions_of(failed) is None
        (photos / "b" / "twin.jpg").unlink()
        _index(lib, tiny_encoder)
        keys = set(lib.catalog.index_keys().tolist())
        assert lib.catalog.db.execute("SELECT COUNT(*) FROM regions").fetchone()[0] == lib.photo_count()
        assert all(int(p) in set(lib.catalog.ids().tolist()) for p in regions.photo_of(np.array(sorted(keys))))


def test_hnsw_returns_k_distinct_photos_like_exact_and_catches_up_region_keys(tmp_path, photos, tiny_encoder):
    with Library(tmp_path / "lib", writable=True, exact_below=1) as lib:
        _index(lib, tiny_encoder, [photos], regions="dense")
        hnsw = lib.refresh_index()
        assert hnsw.kind == "hnsw" and len(hnsw) == len(lib.catalog.index_keys()) > 10 * lib.photo_count()
        (photos / "a" / "img00.jpg").unlink()
        make_photo(photos / "a" / "img05.jpg", seed=777)  # changed: its old region keys must go
        make_photo(photos / "c" / "extra.jpg", seed=888, size=(480, 240))  # new, with more crops than most
        _index(lib, tiny_encoder)
        caught_up = lib.refresh_index()
        assert sorted(int(k) for k in caught_up.index.keys) == sorted(lib.catalog.index_keys().tolist())
        assert len(list(lib.path.glob("vectors-*.usearch"))) == 1
        sets = [lib.vectors_of(k) for k in lib.catalog.ids()[:4]]
        approx = lib.search_sets(sets, k=8)
    with Library(tmp_path / "lib", exact_below=10**6) as reader:
        assert reader.refresh_index().kind == "exact"
        exact = reader.search_sets(sets, k=8)
    for a, b in zip(approx, exact, strict=True):
        assert len(a) == len({h.key for h in a}) == 8
        assert [h.key for h in a][:3] == [h.key for h in b][:3]
        np.testing.assert_allclose([h.score for h in a], [h.score for h in b], atol=2e-3)


@pytest.mark.parametrize("exact_below", [50_000, 1], ids=["exact", "usearch"])
def test_duplicates_compare_whole_photos_only(tmp_path, photos, tiny_encoder, exact_below):
    shutil.copy(photos / "a" / "img01.jpg", photos / "b" / "copy.jpg")
    Image.open(photos / "a" / "img03.jpg").crop((0, 0, 200, 150)).save(photos / "b" / "corner.jpg")
    groups = {}
    for name in ("off", "dense"):
        with Library(tmp_path / name, writable=True, exact_below=exact_below) as lib:
            _index(lib, tiny_encoder, [photos], regions=name)
            groups[name] = [sorted(m.path for m in g.members) for g in find_duplicates(lib, threshold=0.95, k=5)]
    assert groups["dense"] == groups["off"]
    assert any(str(photos / "b" / "copy.jpg") in g for g in groups["off"])
