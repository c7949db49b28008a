"""Each job type through the real stack: gunicorn -> Redis -> Celery worker -> result, read back."""
from __future__ import annotations

import base64
import hashlib
import os

from tests.support.api import b64
from tests.support.images import decode, gradient_png, png

ALL_ALGORITHMS = ["sha256", "md5", "sha1", "sha512", "blake2b"]


def test_calc_hash_digests_equal_hashlib(api):
    content = os.urandom(1024)
    task_id = api.submitted("calc_hash", {"content": b64(content), "algorithms": ALL_ALGORITHMS})
    info = api.wait_status(task_id, "done", "error")
    assert info["status"] == "done" and info["code"] == 0
    assert info["result"]["size"] == 1024
    assert info["result"]["digests"] == {name: hashlib.new(name, content).hexdigest() for name in ALL_ALGORITHMS}
    assert "perceptual" not in info["result"]


def test_calc_hash_defaults_to_sha256_and_hashes_images_perceptually(api):
    content = gradient_png()
    info = api.wait_status(api.submitted("calc_hash", {"content": b64(content)}), "done", "error")
    assert info["result"]["digests"] == {"sha256": hashlib.sha256(content).hexdigest()}
    perceptual = info["result"]["perceptual"]
    assert set(perceptual) == {"ahash", "dhash"}
    assert all(len(value) == 16 and int(value, 16) != 0 for value in perceptual.values())


def test_resize_image_keeps_aspect_inside_the_box(api):
    task_id = api.submitted("resize_image", {"content": b64(png(400, 300)), "width": 100, "height": 100})
    result = api.wait_status(task_id, "done", "error")["result"]
    image = decode(base64.b64decode(result["content"]))
    assert (result["width"], result["height"]) == (100, 75) == image.size
    assert result["format"] == "png" and image.format == "PNG"


def test_resize_image_without_keep_aspect_fills_the_box_in_the_requested_format(api):
    upload = {"content": b64(png(400, 300)), "width": 120, "height": 80, "keep_aspect": False, "format": "jpeg"}
    result = api.wait_status(api.submitted("resize_image", upload), "done", "error")["result"]
    image = decode(base64.b64decode(result["content"]))
    assert image.size == (120, 80) and image.format == "JPEG" and result["format"] == "jpeg"


def test_water_marks_changes_pixels_only_where_the_mark_is(api):
    color = (30, 120, 200)
    upload = {"content": b64(png(400, 300, color)), "text": "CONFIDENTIAL", "position": "bottom-right", "opacity": 0.9}
    result = api.wait_status(api.submitted("water_marks", upload), "done", "error")["result"]
    image = decode(base64.b64decode(result["content"])).convert("RGB")
    assert image.size == (400, 300)
    bottom_right = image.crop((200, 150, 400, 300)).get_flattened_data()
    top_left = image.crop((0, 0, 200, 150)).get_flattened_data()
    assert sum(pixel != color for pixel in bottom_right) > 100
    assert all(pixel == color for pixel in top_left)


def test_bad_content_ends_in_error_with_a_clear_message(api):
    task_id = api.submitted("resize_image", {"content": b64(b"this is not an image"), "width": 10})
    info = api.wait_status(task_id, "done", "error")
    assert info["status"] == "error"
    assert info["code"] == 2
    assert info["message"] == "content is not a decodable image in an accepted format (PNG, JPEG, WEBP, GIF, BMP: input_formats)"
    assert info["result"] is None and info["processed"] is not None


def test_bad_content_does_not_stop_the_worker(api):
    api.wait_status(api.submitted("water_marks", {"content": b64(b"\x89PNG broken"), "text": "x"}), "error")
    info = api.wait_status(api.submitted("calc_hash", {"content": b64(b"after")}), "done", "error")
    assert info["status"] == "done"
