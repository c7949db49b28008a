"""Resource bounds per job type (jobs.<type>.*): checked before the work they bound, an out-of-bounds
request is bad content (code 2) naming the bound, and the worker keeps serving."""
from __future__ import annotations

import io
import math

import pytest
from PIL import Image

from jobs.catalogue import Bounds
from jobs.failures import BadContent, OutOfBounds
from tasks.hashing import calc_hash
from tasks.images import fit_size, resize_image, water_marks
from tests.support.api import b64
from tests.support.images import noise_png, one_by_hundred, png


def image_bytes(fmt: str, size: tuple[int, int] = (40, 30)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (200, 10, 10)).save(buffer, fmt)
    return buffer.getvalue()


def test_keep_aspect_cannot_compute_a_side_past_the_bound():
    # 1x100 asked 10000 wide: the height keep_aspect computes is 1,000,000.
    with pytest.raises(OutOfBounds, match=r"10000x1000000 .*10000 pixels a side \(max_output_side\)"):
        fit_size((1, 100), 10000, None, True)


def test_output_pixels_are_bounded_whatever_the_sides():
    with pytest.raises(OutOfBounds, match=r"over the bound of 1000000 pixels \(max_output_pixels\)"):
        fit_size((400, 300), 2000, 1000, False, Bounds(max_output_pixels=1_000_000))


def test_a_size_within_the_bounds_is_computed_as_before():
    assert fit_size((1, 100), None, 10000, True) == (100, 10000)


@pytest.mark.parametrize("width", [1e3, True, 0, -5])
def test_a_width_that_is_not_a_positive_integer_is_bad_content(width):
    with pytest.raises(BadContent, match="width must be a positive integer"):
        fit_size((400, 300), width, None, True)


def test_the_74_byte_upload_is_refused_before_any_pixel_is_made():
    assert len(one_by_hundred()) < 100
    with pytest.raises(OutOfBounds, match="max_output_side"):
        resize_image(one_by_hundred(), width=10000)


def test_formats_outside_the_allow_list_are_not_images():
    tiff = image_bytes("TIFF")
    with pytest.raises(BadContent, match=r"accepted format \(PNG, JPEG, WEBP, GIF, BMP: input_formats\)"):
        resize_image(tiff, width=10)
    assert resize_image(tiff, width=10, bounds=Bounds(input_formats=("TIFF",)))["width"] == 10


def test_calc_hash_hashes_any_content_but_probes_only_allowed_formats():
    tiff = image_bytes("TIFF")
    assert "perceptual" not in calc_hash(tiff, formats=("PNG",))
    assert "perceptual" in calc_hash(tiff, formats=("TIFF",))


def test_a_result_over_its_bound_is_bad_content_naming_it():
    with pytest.raises(OutOfBounds, match=r"over the bound of 100 bytes \(max_result_bytes\)"):
        resize_image(png(400, 300), width=200, bounds=Bounds(max_result_bytes=100))


def test_water_marks_refuses_a_text_too_large_to_draw():
    with pytest.raises(OutOfBounds, match="max_output_pixels"):
        water_marks(png(400, 300), "W" * 200, font_size=1000)


@pytest.mark.parametrize("opacity", [math.nan, math.inf, -math.inf, -0.1, 1.5, "0.5"])
def test_water_marks_refuses_an_opacity_outside_0_to_1(opacity):
    with pytest.raises(BadContent, match="opacity must be a number from 0 to 1"):
        water_marks(png(40, 30), "x", opacity=opacity)


# --- through the gateway and a real worker ---------------------------------------------------------

def test_an_out_of_bounds_resize_ends_code_2_and_the_worker_keeps_serving(api, worker):
    task_id = api.submitted("resize_image", {"content": b64(one_by_hundred()), "width": 10000})
    info = api.wait_status(task_id, "done", "error")
    assert (info["status"], info["code"]) == ("error", 2)
    assert "max_output_side" in info["message"]
    assert worker.alive()
    after = api.submitted("resize_image", {"content": b64(one_by_hundred()), "width": 5})
    assert api.wait_status(after, "done", "error")["result"]["height"] == 500


def test_a_result_over_the_types_bound_ends_code_2(api):
    task_id = api.submitted("resize_small_result", {"content": b64(noise_png(40, 30)), "width": 300})
    info = api.wait_status(task_id, "done", "error")
    assert (info["status"], info["code"]) == ("error", 2)
    assert "over the bound of 2000 bytes (max_result_bytes)" in info["message"]


def test_a_watermark_text_pillow_refuses_ends_code_2(api):
    task_id = api.submitted("water_marks", {"content": b64(png(400, 300)), "text": "W" * 200, "font_size": 1000})
    info = api.wait_status(task_id, "done", "error")
    assert (info["status"], info["code"]) == ("error", 2)
    assert "font size 1000" in info["message"]
