"""``vcfnet users`` and ``vcfnet serve`` (argument handling and --demo loading)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest

from tests.io.dicom_fixtures import write_dicom
from tests.predict_fixtures import make_run_dir
from vcfnet.cli import main


def users(tmp_path, *args, stdin: str = "", monkeypatch=None) -> int:
    if monkeypatch is not None:
        monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    return main(["users", "--data", str(tmp_path / "data"), *args])


def test_users_add_list_disable_reset(tmp_path, monkeypatch, capsys):
    password = "first admin password\n"
    assert (
        users(
            tmp_path,
            "add",
            "root",
            "--role",
            "admin",
            "--password-stdin",
            stdin=password,
            monkeypatch=monkeypatch,
        )
        == 0
    )
    assert (
        users(
            tmp_path,
            "add",
            "doc",
            "--role",
            "clinician",
            "--hospital",
            "North",
            "--random-password",
        )
        == 0
    )
    out = capsys.readouterr().out
    generated = out.strip().splitlines()[-1].split("password: ")[1]
    assert len(generated) >= 12
    assert users(tmp_path, "list") == 0
    listing = capsys.readouterr().out
    assert "root\tadmin" in listing and "doc\tclinician\tNorth\tactive" in listing
    assert users(tmp_path, "disable", "doc") == 0
    users(tmp_path, "list")
    assert "doc\tclinician\tNorth\tdisabled" in capsys.readouterr().out
    assert users(tmp_path, "reset-password", "root", "--random-password") == 0
    assert "password: " in capsys.readouterr().out


def test_users_refuse_weak_duplicate_and_missing_passwords(tmp_path, monkeypatch, capsys):
    assert (
        users(
            tmp_path,
            "add",
            "a",
            "--role",
            "admin",
            "--password-stdin",
            stdin="short\n",
            monkeypatch=monkeypatch,
        )
        == 2
    )
    assert "at least 12" in capsys.readouterr().err
    assert users(tmp_path, "add", "a", "--role", "admin", "--random-password") == 0
    assert users(tmp_path, "add", "a", "--role", "admin", "--random-password") == 2
    assert "exists" in capsys.readouterr().err
    monkeypatch.setattr("sys.stdin", io.StringIO(""))  # not a terminal: no prompt, no default
    assert users(tmp_path, "add", "b", "--role", "admin") == 2
    assert "--password-stdin" in capsys.readouterr().err
    assert users(tmp_path, "disable", "nobody") == 2


def test_serve_arguments(tmp_path):
    from vcfnet.cli.main import build_parser
    from vcfnet.cli.serve import settings_from_args

    args = build_parser("serve").parse_args(
        ["serve", "--data", str(tmp_path), "--port", "9000", "--workers", "2", "--demo"]
    )
    assert args.port == 9000 and args.workers == 2 and args.demo == "demo-out"
    settings = settings_from_args(args)
    assert settings.data_dir == tmp_path and settings.database_url.endswith("vcfnet.db")
    assert settings.study_import_dirs == ()
    args = build_parser("serve").parse_args(
        ["serve", "--study-import-dir", str(tmp_path), "--study-import-dir", "rel"]
    )
    dirs = settings_from_args(args).study_import_dirs
    assert dirs == (tmp_path.resolve(), Path("rel").resolve())
    settings = settings_from_args(build_parser("serve").parse_args(["serve"]))
    assert settings.storage_url is None and settings.job_workers == 2
    args = build_parser("serve").parse_args(
        ["serve", "--storage", "s3://bucket/site-a", "--job-workers", "0"]
    )
    settings = settings_from_args(args)
    assert settings.storage_url == "s3://bucket/site-a" and settings.job_workers == 0


def make_demo_out(root):
    """The parts of a ``vcfnet demo`` output folder that --demo reads."""
    from vcfnet.io.voc import write_voc

    make_run_dir(root / "run")
    site = root / "cohort" / "SITE3"
    (site / "images").mkdir(parents=True)
    (site / "annotations").mkdir()
    stored = np.random.default_rng(0).integers(0, 4000, (240, 200)).astype(np.uint16)
    for i in range(2):
        write_dicom(site / "images" / f"img{i}.dcm", stored, window=(2000, 4000))
        write_voc(
            site / "annotations" / f"img{i}.xml",
            f"img{i}.dcm",
            200,
            240,
            [("Acute-L1", (40, 50, 120, 110)), ("Normal-L2", (60, 130, 170, 200))],
        )
    (root / "cohort" / "cohort.json").write_text(
        json.dumps({"sites": {"SITE1": {"split": "70:30"}, "SITE3": {"split": "none"}}})
    )
    return root


def test_demo_loads_model_accounts_and_cases(tmp_path, capsys):
    from fastapi.testclient import TestClient

    from tests.serve.conftest import post_login
    from vcfnet.serve.app import create_app
    from vcfnet.serve.demo import prepare_demo
    from vcfnet.serve.settings import Settings

    demo_out = make_demo_out(tmp_path / "demo-out")
    settings, passwords = prepare_demo(
        Settings(argon2_profile="CHEAPEST"), demo_out, data_given=False
    )
    assert set(passwords) == {"demo-clinician", "demo-radiologist", "demo-researcher", "demo-admin"}
    assert settings.data_dir == demo_out / "serve-data"
    app = create_app(settings)
    client = TestClient(app, follow_redirects=False)
    assert post_login(client, "demo-clinician", passwords["demo-clinician"]).status_code == 303
    cases = client.get("/api/v1/cases").json()
    assert len(cases) == 2
    assert [b["level"] for b in cases[0]["boxes"]] == ["L1"]
    again, _ = prepare_demo(Settings(argon2_profile="CHEAPEST"), demo_out, data_given=False)
    assert again.model_path == demo_out / "run"
    with app.state.vcfnet.session_factory() as db:
        from vcfnet.serve.models import Case, Study

        assert db.query(Case).count() == 2  # loaded once
        assert db.query(Study).count() == 2  # the demo studies too


def test_demo_has_a_ready_reader_study_and_one_to_read(tmp_path):
    """The researcher sees Table 3 and the MRMC result of simulated readers at once; the demo
    radiologist has a launched study to read."""
    from fastapi.testclient import TestClient

    from tests.serve.conftest import page_csrf, post_login
    from vcfnet.serve.app import create_app
    from vcfnet.serve.demo import DEMO_READING_STUDY, DEMO_STUDY, prepare_demo
    from vcfnet.serve.settings import Settings

    demo_out = make_demo_out(tmp_path / "demo-out")
    settings, passwords = prepare_demo(
        Settings(argon2_profile="CHEAPEST"), demo_out, data_given=False
    )
    app = create_app(settings)
    res = TestClient(app, follow_redirects=False)
    assert post_login(res, "demo-researcher", passwords["demo-researcher"]).status_code == 303
    listing = res.get("/studies").text
    assert DEMO_STUDY in listing and DEMO_READING_STUDY in listing
    study_id = int(listing.split(DEMO_STUDY)[0].rsplit('href="/studies/', 1)[1].split('"')[0])
    page = res.get(f"/studies/{study_id}").text
    assert "SIMULATED READERS" in page and "Table 3" in page and "interim" not in page
    assert "Figure 6" in page and res.get(f"/studies/{study_id}/figure6.png").status_code == 200
    for level in ("trainee", "competent", "expert"):
        assert f"demo-sim-{level}" in page
    reads = res.get(f"/studies/{study_id}/reads.csv").text.splitlines()
    assert len(reads) == 1 + 3 * 2 * 2  # 3 readers x 2 modes x 2 vertebrae
    rad = TestClient(app, follow_redirects=False)
    assert post_login(rad, "demo-radiologist", passwords["demo-radiologist"]).status_code == 303
    assert DEMO_READING_STUDY in rad.get("/reading").text
    assert page_csrf(rad.get("/reading").text)
    sim = TestClient(app, follow_redirects=False)
    assert post_login(sim, "demo-sim-expert", "x" * 16).status_code != 303  # cannot log in


def test_demo_without_a_model_says_what_to_do(tmp_path):
    from vcfnet.errors import ConfigError
    from vcfnet.serve.demo import prepare_demo
    from vcfnet.serve.settings import Settings

    with pytest.raises(ConfigError, match="vcfnet demo --quick"):
        prepare_demo(Settings(), tmp_path, data_given=False)


def test_serve_refuses_a_pinned_backend_the_model_lacks(tmp_path, capsys):
    """--backend onnx-int8 on a run folder without an int8 export: a one-line error before the
    server starts (under --backend auto a broken model is answered 503 instead)."""
    run = make_run_dir(tmp_path / "run")
    code = main(
        ["serve", "--data", str(tmp_path / "d"), "--model", str(run), "--backend", "onnx-int8"]
    )
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert "no onnx-int8 model" in err and "--quantize int8 --calibration" in err


def test_users_data_folder_before_or_after_the_action(tmp_path, capsys):
    """`vcfnet users add ... --data DIR` works like `vcfnet users --data DIR add ...`."""
    data = str(tmp_path / "site")
    add = ["add", "root", "--role", "admin", "--random-password"]
    assert main(["users", *add, "--data", data]) == 0
    assert main(["users", "--data", data, "list"]) == 0
    assert main(["users", "list", "--data", data]) == 0
    listed = capsys.readouterr().out.splitlines()
    assert [line.split("\t")[0] for line in listed[1:]] == ["root", "root"]
    assert any((tmp_path / "site").iterdir())  # the database is in DIR


def test_users_api_key_works_on_the_json_api(tmp_path, capsys):
    """`vcfnet users api-key NAME` prints a key once; the JSON API takes it as a Bearer token."""
    from fastapi.testclient import TestClient

    from tests.serve.conftest import dispose
    from vcfnet.serve.app import create_app
    from vcfnet.serve.settings import Settings

    data = tmp_path / "site"
    assert (
        main(
            ["users", "add", "doc", "--role", "clinician", "--random-password", "--data", str(data)]
        )
        == 0
    )
    assert main(["users", "api-key", "doc", "--data", str(data), "--name", "pacs script"]) == 0
    key = capsys.readouterr().out.strip().splitlines()[-1].split("\t")[1]
    app = create_app(Settings(data_dir=data))
    try:
        with TestClient(app, headers={"Authorization": f"Bearer {key}"}) as api:
            me = api.get("/api/v1/me")
    finally:
        dispose(app)
    assert me.status_code == 200 and me.json()["username"] == "doc"
    assert main(["users", "api-key", "nobody", "--data", str(data)]) == 2
