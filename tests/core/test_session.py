"""The query facade: one Session answers image, path, key and text queries and keeps what it loaded."""

import pytest

from edgeret.cli import main
from edgeret.decode import decode
from edgeret.errors import LibraryError, UsageError
from edgeret.session import Query, RerankSpec, Session


@pytest.fixture
def library(tmp_path, photos, tiny_encoder):
    lib = tmp_path / "lib"
    assert main(["index", str(photos), "--library", str(lib), "--encoder", str(tiny_encoder), "--json"]) == 0
    return lib


def test_a_query_is_exactly_one_thing():
    assert Query(text="a red bike").is_text and Query(key=3, box=(0, 0, 5, 5)).box == (0, 0, 5, 5)
    for bad in ({}, {"text": "x", "key": 1}, {"path": "a.jpg", "image": object()}):
        with pytest.raises(UsageError, match="a query is one of"):
            Query(**bad)


def test_path_image_and_key_queries_agree(library, photos):
    target = photos / "a" / "img03.jpg"
    with Session(library, threads=1) as session:
        by_path = session.first_stage(Query(path=target), 3)
        by_image = session.first_stage(Query(image=decode(target)), 3)
        assert by_path[0].path == str(target) and [h.key for h in by_path] == [h.key for h in by_image]
        key = by_path[0].key
        own = session.first_stage(Query(key=key), 3, exclude_self=True)  # the stored vector, the photo left out
        assert key not in [h.key for h in own] and [h.key for h in own][:2] == [h.key for h in by_path[1:3]]
        assert session.first_stage(Query(path=target), 3, exclude_self=True)[0].key != key
        assert session.encoder() is session.encoder()  # loaded once
        with pytest.raises(LibraryError, match="no photo"):
            session.prepare(Query(key=10_000))


def test_search_streams_first_stage_then_each_judgement_and_keeps_the_reranker(library, photos):
    with Session(library, threads=1) as session:
        rankings = list(session.search(Query(path=photos / "a" / "img05.jpg"), 4, RerankSpec("sv")))
        assert len(rankings) == 1 + 4 and all(r.p_same is None for r in rankings[0])
        assert all(r.p_same is not None for r in rankings[-1])
        sv = session.reranker(RerankSpec("sv"))
        assert session.has_reranker(RerankSpec("sv")) and session.reranker(RerankSpec("sv")) is sv
        stopped = list(session.search(Query(path=photos / "a" / "img05.jpg"), 4, RerankSpec("sv"), cancel=lambda: True))
        assert len(stopped) == 1  # cancelled before the first judgement: the first stage stands
        with pytest.raises(UsageError, match="MLLM only"):
            next(session.search(Query(text="red"), 4, RerankSpec("sv")))
        with pytest.raises(UsageError, match="lambda"):
            next(session.search(Query(path=photos / "a" / "img05.jpg"), 4, lam=2))


def test_no_library_is_a_library_error(tmp_path):
    with Session(tmp_path / "none") as session, pytest.raises(LibraryError, match="no library"):
        session.first_stage(Query(text="x"))


def test_a_boxed_query_encodes_its_region_and_hands_re_rankers_the_photo_and_box(library, photos):
    from edgeret.box import RegionQuery

    target = photos / "a" / "img02.jpg"
    with Session(library, threads=1) as session:
        p = session.prepare(Query(path=target, box="0.25,0.25,0.75,0.75"))
        assert p.box.as_list() == [80, 60, 240, 180] and p.region.size == (160, 120)
        assert isinstance(p.rerank, RegionQuery) and p.rerank.image.size == (320, 240)
        whole = session.first_stage(Query(path=target), 13)
        boxed = session.first_stage(Query(path=target, box=(80, 60, 240, 180)), 13)
        assert [h.key for h in boxed] != [h.key for h in whole] or boxed[0].score < whole[0].score
        with pytest.raises(UsageError, match="lies outside"):
            session.prepare(Query(path=target, box=(0, 0, 400, 100)))
    with pytest.raises(UsageError, match="text query has none"):
        Query(text="red", box=(0, 0, 10, 10))
