"""calc_hash's plain functions, called directly."""
from __future__ import annotations

import hashlib

import pytest
from PIL import Image

from jobs.content import decode
from jobs.failures import BadContent
from tasks.hashing import average_hash, calc_hash, difference_hash
from tests.support.images import decode as open_png
from tests.support.images import gradient_png


def test_digests_match_hashlib_for_every_algorithm():
    data = b"the quick brown fox"
    result = calc_hash(data, ["md5", "blake2b"])
    assert result == {"size": len(data), "digests": {"md5": hashlib.md5(data).hexdigest(),
                                                     "blake2b": hashlib.blake2b(data).hexdigest()}}


def test_near_copies_share_perceptual_hashes_and_different_images_do_not():
    original = open_png(gradient_png(64, 48))
    smaller = original.resize((32, 24))
    mirrored = original.transpose(Image.Transpose.FLIP_TOP_BOTTOM)
    assert hamming(average_hash(original), average_hash(smaller)) <= 4
    assert hamming(difference_hash(original), difference_hash(smaller)) <= 4
    assert hamming(average_hash(original), average_hash(mirrored)) >= 32


def hamming(left: str, right: str) -> int:
    """Near copies are matched by the number of differing bits, not by equality."""
    return bin(int(left, 16) ^ int(right, 16)).count("1")


def test_decode_rejects_invalid_base64():
    with pytest.raises(BadContent, match="not valid base64"):
        decode("not*base64", 100)


def test_decode_rejects_content_over_the_limit():
    with pytest.raises(BadContent, match="limit"):
        decode("QUFBQUFBQUFB", 4)
