"""Results too big to inline: /taskinfo carries a large result's small fields and its result_url,
GET /tasks/<uuid>/result serves the bytes with their length up front, GET /tasks rows never carry a
result, and reading a large result many times at once does not grow a gunicorn worker by its size."""
from __future__ import annotations

import io
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from PIL import Image

from devsupport.processes import free_port, start_gunicorn, wait_until
from devsupport.procfs import children, status_kib
from tests.support.api import Api, b64
from tests.support.images import noise_png, png

BIG = (1800, 1800)  # random pixels: a PNG of about 8 MB, 10.7 MB of base64 (results.max_inline_bytes: 1 MiB)


@pytest.fixture(scope="module")
def admin(gateway_url, worker, vault) -> Api:
    return Api(gateway_url, auth=vault.basic("admin"))


@pytest.fixture(scope="module")
def big_task(admin) -> str:
    task_id = admin.submitted("resize_image", {"content": b64(noise_png(600, 600)), "width": BIG[0], "height": BIG[1],
                                               "keep_aspect": False})
    admin.wait_status(task_id, "done", timeout=60)
    return task_id


def test_taskinfo_shows_a_large_result_by_its_small_fields_and_url(admin, big_task):
    result = admin.taskinfo(big_task).json()["result"]
    assert set(result) == {"width", "height", "format", "size", "result_url"}
    assert (result["width"], result["height"], result["format"]) == (*BIG, "png")
    assert result["size"] > 1024 * 1024 and result["result_url"] == f"/tasks/{big_task}/result"


def test_the_result_route_serves_the_image_with_its_length_up_front(admin, big_task):
    size = admin.taskinfo(big_task).json()["result"]["size"]
    response = admin.request("GET", f"/tasks/{big_task}/result", stream=True)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "image/png" and response.headers["Content-Length"] == str(size)
    body = response.content
    assert len(body) == size and Image.open(io.BytesIO(body)).size == BIG


def test_small_results_stay_inline_and_the_route_serves_any_result(admin):
    image_id = admin.submitted("resize_image", {"content": b64(png(400, 300)), "width": 40, "format": "webp"})
    inline = admin.wait_status(image_id, "done")["result"]
    assert "result_url" not in inline and set(inline) == {"content", "width", "height", "format", "size"}
    served = admin.request("GET", f"/tasks/{image_id}/result")
    assert served.headers["Content-Type"] == "image/webp" and b64(served.content) == inline["content"]
    hash_id = admin.submitted("calc_hash", {"content": b64(b"json result")})
    result = admin.wait_status(hash_id, "done")["result"]
    served = admin.request("GET", f"/tasks/{hash_id}/result")
    assert served.headers["Content-Type"] == "application/json" and served.json() == result


def test_listing_rows_never_carry_results(admin, big_task):
    rows = admin.request("GET", "/tasks", params={"limit": 200}).json()["tasks"]
    assert big_task in {row["uuid"] for row in rows}
    assert all("result" not in row for row in rows)


def test_the_result_route_keeps_the_taskinfo_rules(admin, api_as, big_task):
    foreign = api_as("service").request("GET", f"/tasks/{big_task}/result")
    unknown = admin.request("GET", "/tasks/00000000-0000-4000-8000-000000000000/result")
    assert foreign.status_code == unknown.status_code == 404 and foreign.content == unknown.content
    assert api_as(None).request("GET", f"/tasks/{big_task}/result").status_code == 401
    queued = admin.submitted("calc_hash_parked", {"content": b64(b"never runs")})
    response = admin.request("GET", f"/tasks/{queued}/result")
    assert response.status_code == 409 and response.json()["uuid"] == queued


def test_the_result_route_is_in_the_openapi_document(gateway_url):
    operation = requests.get(gateway_url + "/openapi.json", timeout=10).json()["paths"]["/tasks/{task_id}/result"]["get"]
    assert {"200", "401", "404", "409"} <= set(operation["responses"])


@pytest.fixture(scope="module")
def lone_gateway(service_env, run_dir) -> tuple[str, int]:
    """A gateway of one gunicorn worker process of its own, so its memory peak is this module's."""
    port = free_port()
    proc = start_gunicorn(port, service_env, run_dir, workers=1)
    url = f"http://127.0.0.1:{port}"
    wait_until(lambda: proc.alive() and requests.get(url + "/health", timeout=1).status_code == 200, 30, "lone gateway")
    yield url, wait_until(lambda: children(proc.proc.pid) and children(proc.proc.pid)[0], 10, "its worker process")
    proc.stop()


def test_concurrent_reads_of_a_large_result_do_not_hold_copies_of_it(lone_gateway, vault, big_task):
    url, pid = lone_gateway
    client = Api(url, auth=vault.basic("admin"))
    size = client.taskinfo(big_task).json()["result"]["size"]  # warm: login cached, code paths loaded
    client.request("GET", f"/tasks/{big_task}/result").raise_for_status()
    before = status_kib(pid, "VmHWM")
    reads = [("GET", "/taskinfo", {"params": {"taskid": big_task}}), ("GET", "/tasks", {"params": {"limit": 200}}),
             ("GET", f"/tasks/{big_task}/result", {})] * 8
    with ThreadPoolExecutor(len(reads)) as pool:
        answers = list(pool.map(lambda r: Api(url, auth=vault.basic("admin")).request(r[0], r[1], **r[2]), reads))
    assert all(a.status_code == 200 for a in answers)
    assert sum(len(a.content) for a in answers if a.url.endswith("/result")) == 8 * size
    grown_mib = (status_kib(pid, "VmHWM") - before) / 1024
    print(f"gunicorn worker peak RSS grew {grown_mib:.1f} MiB over 24 concurrent reads of a {size / 2**20:.1f} MiB result")
    assert grown_mib < 8 * size / 2**20 / 2  # under half of 8 copies; measured: a few MiB
