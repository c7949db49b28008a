"""Payload errors (jobs/catalogue.py) and the base64 rule (jobs/content.py), without a gateway."""
from __future__ import annotations

import base64

import pytest

from jobs.catalogue import JobCatalogue
from jobs.content import decode, decoded_length
from jobs.failures import BadContent
from settings import load_settings


@pytest.fixture(scope="module")
def catalogue() -> JobCatalogue:
    return JobCatalogue(load_settings("config.example.json", ".secrets.example.json", environ={}).config["jobs"])


def test_every_problem_is_reported_at_once_by_field(catalogue):
    errors = catalogue["resize_image"].upload_errors({"content": "!!", "width": 0, "surplus": 1})
    assert errors == {"upload.content": ["Must be valid base64."], "upload.width": ["Must be at least 1."],
                      "upload.surplus": ["Unknown field."]}


def test_missing_required_fields_are_named(catalogue):
    assert catalogue["water_marks"].upload_errors({"content": "aGk="}) == {
        "upload.text": ["Missing data for required field."]}


def test_error_messages_never_echo_the_value(catalogue):
    errors = catalogue["calc_hash"].upload_errors({"content": 12345678, "algorithms": ["secret-value"]})
    assert "12345678" not in str(errors) and "secret-value" not in str(errors)


@pytest.mark.parametrize("size", [0, 1, 2, 3, 4, 100, 1001])
def test_decoded_length_is_exact_for_valid_base64(size):
    assert decoded_length(base64.b64encode(b"x" * size).decode()) == size


def test_oversized_content_is_refused_from_its_length(catalogue):
    job = catalogue["calc_hash"]
    text = base64.b64encode(b"x" * (job.max_content_bytes + 1)).decode()
    assert job.content_too_large({"content": text})
    with pytest.raises(BadContent, match="exceeds the limit"):
        decode(text, job.max_content_bytes)


@pytest.mark.parametrize("text", ["not base64!", "aGk", "aGk=\n", 42])
def test_strict_decoding_refuses_anything_but_base64(text):
    with pytest.raises(BadContent):
        decode(text, 100)


def test_queues_are_one_list_with_the_webhook_queue(catalogue):
    assert catalogue.queues == ["hash", "images", "webhooks"]
    assert catalogue.job_queues == ["hash", "images"]
