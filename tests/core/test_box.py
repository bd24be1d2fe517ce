"""Query boxes: the pixels-or-fractions rule, the checks against the image, the crop and its margin."""

import pytest
from PIL import Image

from edgeret.box import Box, RegionQuery, as_box, parse_box, query_image
from edgeret.errors import UsageError

SIZE = (400, 300)


def test_whole_numbers_are_pixels_and_decimals_within_0_1_are_fractions():
    assert parse_box("10,20,110,220").resolve(SIZE) == Box(10, 20, 110, 220)
    assert parse_box(" 0.25, 0.1 ,0.75,0.9").resolve(SIZE) == Box(100, 30, 300, 270)
    assert parse_box("0.0,0.0,1.0,1.0").resolve(SIZE) == Box(0, 0, 400, 300)
    assert parse_box("0,0,8,8").resolve(SIZE) == Box(0, 0, 8, 8)  # whole numbers: pixels, never fractions


@pytest.mark.parametrize("text, says", [
    ("1,2,3", "four numbers"), ("a,b,c,d", "four numbers"), ("", "four numbers"),
    ("0.5,0.5,300,200", "whole numbers"), ("0.1,0.1,1.5,0.9", "whole numbers"),
])
def test_malformed_boxes_are_usage_errors(text, says):
    with pytest.raises(UsageError, match=says) as e:
        parse_box(text)
    assert e.value.exit_code == 2


@pytest.mark.parametrize("text, says", [
    ("100,10,50,200", "inverted"), ("10,10,10,200", "empty"), ("0.5,0.1,0.5,0.9", "empty"),
    ("-5,0,100,100", "outside"), ("0,0,401,300", "outside"), ("300,200,500,400", "outside"),
    ("0,0,5,100", "at least 8 px"),
])
def test_boxes_that_do_not_fit_the_image_are_usage_errors(text, says):
    with pytest.raises(UsageError, match=says):
        parse_box(text).resolve(SIZE)


def test_crop_and_margin_stay_inside_the_photo():
    image = Image.new("RGB", SIZE)
    box = as_box([0, 100, 200, 200], SIZE)
    assert box.crop(image).size == (200, 100)
    assert box.grown(0.1, SIZE) == Box(0, 90, 220, 210)  # clipped at the left edge
    region = RegionQuery(image, box)
    assert region.region().size == (220, 120)
    assert query_image(region, 0.0).size == (200, 100)
    assert query_image(image) is image and query_image("a text") == "a text"
    with pytest.raises(UsageError):
        as_box("0,0,500,500", SIZE)
    with pytest.raises(UsageError, match="four numbers"):
        as_box([1, 2], SIZE)
