"""S3 storage against moto's in-process S3 server: the Storage contract, orphan sweeping, and the
platform running with ``storage_url="s3://..."`` (nothing of a case on the local disk)."""

from __future__ import annotations

import socket

import pytest

from tests.serve.conftest import login, make_settings, png_bytes, put_boxes, running_app
from tests.serve.conftest import upload as upload_file
from vcfnet.serve.storage import StorageKeyError, open_storage
from vcfnet.serve.storage_s3 import S3Storage, StorageConfigError

BUCKET = "vcfnet-test"


@pytest.fixture(scope="module")
def s3_endpoint():
    moto_server = pytest.importorskip("moto.server")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture()
def s3_env(s3_endpoint, monkeypatch):
    """boto3's standard variables pointing at the moto server, and an empty bucket."""
    import boto3

    for name, value in {
        "AWS_ENDPOINT_URL": s3_endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    client = boto3.client("s3")
    client.create_bucket(Bucket=BUCKET)
    yield client
    for item in client.list_objects_v2(Bucket=BUCKET).get("Contents", []):
        client.delete_object(Bucket=BUCKET, Key=item["Key"])
    client.delete_bucket(Bucket=BUCKET)


def test_s3_storage_contract(s3_env, tmp_path):
    storage = S3Storage.from_url(f"s3://{BUCKET}/site-a", scratch_dir=tmp_path)
    storage.write_bytes("images/abc.png", b"png bytes")
    assert storage.exists("images/abc.png")
    assert storage.read_bytes("images/abc.png") == b"png bytes"
    assert s3_env.get_object(Bucket=BUCKET, Key="site-a/images/abc.png")["Body"].read()
    storage.delete("images/abc.png")
    assert not storage.exists("images/abc.png")
    with pytest.raises(FileNotFoundError):
        storage.read_bytes("images/abc.png")
    with pytest.raises(StorageKeyError):
        storage.write_bytes("../escape.png", b"x")


def test_s3_sweep_removes_only_unknown_old_objects(s3_env, tmp_path):
    storage = S3Storage.from_url(f"s3://{BUCKET}/p", scratch_dir=tmp_path)
    for key in ("images/kept.png", "images/orphan.png", "heatmaps/other.png"):
        storage.write_bytes(key, b"x")
    assert storage.sweep_orphans("images", {"images/kept.png"}) == 0  # too young
    assert storage.sweep_orphans("images", {"images/kept.png"}, min_age_s=-60) == 1
    assert storage.exists("images/kept.png") and storage.exists("heatmaps/other.png")
    assert not storage.exists("images/orphan.png")


def test_bad_storage_url_says_what_to_give(tmp_path):
    settings = make_settings(tmp_path, storage_url="s3:/nobucket")
    with pytest.raises(StorageConfigError, match="s3://BUCKET"):
        open_storage(settings)


def test_platform_on_s3_keeps_no_case_file_on_disk(s3_env, tmp_path, tiny_run_dir):
    settings = make_settings(tmp_path, tiny_run_dir, storage_url=f"s3://{BUCKET}/cases")
    with running_app(settings) as app:
        clin = login(app, "clin")
        case_id = upload_file(clin, png_bytes()).json()["id"]
        put_boxes(clin, case_id)
        analysis = clin.post(
            f"/api/v1/cases/{case_id}/analyses", headers={"X-CSRF-Token": clin.csrf}
        ).json()
        assert clin.get(f"/cases/{case_id}/image").content.startswith(b"\x89PNG")
        heatmap = clin.get(f"/cases/{case_id}/analyses/{analysis['id']}/heatmap")
        assert heatmap.status_code == 200
        names = {o["Key"] for o in s3_env.list_objects_v2(Bucket=BUCKET)["Contents"]}
        assert {n.split("/")[1] for n in names} == {"images", "heatmaps"}
        local = {p.name for p in (tmp_path / "data").iterdir()}
        assert not local & {"images", "heatmaps", "originals"}
