"""``vcfnet serve`` and ``vcfnet users``: argparse adapters around the platform.

Accounts are made with ``vcfnet users add`` (the first admin too); passwords are read from the
terminal (twice), from stdin (``--password-stdin``) or generated (``--random-password``, printed
once); there is never a default password.
"""

from __future__ import annotations

import argparse
import getpass
import json
import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, replace
from pathlib import Path

from vcfnet.errors import ConfigError
from vcfnet.inference.fastest import BACKENDS
from vcfnet.serve.app import SETTINGS_ENV

log = logging.getLogger(__name__)

DEFAULT_DEMO_OUT = "demo-out"


def _add_location_arguments(parser: argparse.ArgumentParser, default=None) -> None:
    """--data and --db; ``default=argparse.SUPPRESS`` on a sub-action, so that either place works
    (``vcfnet users --data DIR add ...`` or ``vcfnet users add ... --data DIR``)."""
    parser.add_argument(
        "--data",
        type=Path,
        default=default,
        metavar="DIR",
        help="data folder: database, images, heatmaps (default ./vcfnet-data)",
    )
    parser.add_argument(
        "--db", default=default, metavar="URL", help="database URL (default sqlite in --data)"
    )


def add_serve_arguments(parser: argparse.ArgumentParser) -> None:
    _add_location_arguments(parser)
    parser.add_argument("--model", type=Path, default=None, help="RUN_DIR, .pt or .onnx")
    parser.add_argument(
        "--localiser",
        type=Path,
        default=None,
        metavar="LOC",
        help="vertebra localiser (train-localiser RUN_DIR, .pt or .onnx): the Suggest boxes button",
    )
    parser.add_argument(
        "--backend",
        choices=BACKENDS,
        default=None,
        help="inference backend; auto (default): time the checkpoint and the ONNX exports beside "
        "checkpoints/ on a few single crops when the model loads and keep the fastest",
    )
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)"
    )
    parser.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    parser.add_argument(
        "--workers", type=int, default=1, help="uvicorn worker processes (default 1)"
    )
    parser.add_argument(
        "--demo",
        nargs="?",
        const=DEFAULT_DEMO_OUT,
        default=None,
        metavar="DEMO_OUT",
        help="open with the demo's model, test cases and one account per role "
        f"(a 'vcfnet demo' output folder, default {DEFAULT_DEMO_OUT})",
    )
    parser.add_argument(
        "--secure-cookies", action="store_true", help="behind TLS: Secure session cookies"
    )
    parser.add_argument(
        "--keep-originals",
        action="store_true",
        help="keep uploaded files (they hold patient data) beside the de-identified images",
    )
    parser.add_argument(
        "--max-upload-mib", type=int, default=64, help="largest upload (default 64 MiB)"
    )
    parser.add_argument(
        "--study-import-dir",
        type=Path,
        action="append",
        default=[],
        metavar="DIR",
        help="researchers may import prepared datasets (vcfnet prepare) from inside DIR into "
        "reader studies by their path (repeatable; default: none, zip uploads only)",
    )
    parser.add_argument(
        "--storage",
        default=None,
        metavar="s3://BUCKET/PREFIX",
        help="keep case files in S3-compatible storage (endpoint and keys from AWS_* variables; "
        "default: the data folder)",
    )
    parser.add_argument(
        "--job-workers",
        type=int,
        default=None,
        metavar="N",
        help="analysis worker threads per server process (default 2; 0: this process only queues)",
    )
    dicom = parser.add_argument_group("DICOM receiver (C-STORE from a PACS or modality)")
    dicom.add_argument(
        "--dicom-port",
        type=int,
        default=None,
        metavar="PORT",
        help="receive DX/CR images on this port (e.g. 11112), on --host; off by default",
    )
    dicom.add_argument("--ae-title", default="VCFNET", help="the receiver's AE title")
    dicom.add_argument(
        "--allow-ae",
        action="append",
        default=[],
        metavar="AE",
        help="calling AE title let in (repeat; default: any)",
    )
    dicom.add_argument(
        "--pacs-user",
        default="pacs",
        metavar="USERNAME",
        help="clinician account received cases are filed under (default pacs)",
    )
    dicom.add_argument(
        "--dicom-max-mib",
        type=int,
        default=64,
        metavar="MIB",
        help="refuse larger C-STORE datasets (status 0xA700; default 64 MiB)",
    )
    dicom.add_argument(
        "--dicom-accept-sc",
        action="store_true",
        help="also accept Secondary Capture images of modality DX/CR/DR",
    )


def settings_from_args(args: argparse.Namespace):
    from vcfnet.serve.settings import MIB, Settings

    settings = Settings(db_url=args.db)
    if args.data is not None:
        settings = replace(settings, data_dir=args.data)
    for name, value in (
        ("model_path", getattr(args, "model", None)),
        ("localiser_path", getattr(args, "localiser", None)),
        ("model_backend", getattr(args, "backend", None)),
        ("secure_cookies", getattr(args, "secure_cookies", False) or None),
        ("keep_originals", getattr(args, "keep_originals", False) or None),
        ("storage_url", getattr(args, "storage", None)),
        ("job_workers", getattr(args, "job_workers", None)),
    ):
        if value is not None:
            settings = replace(settings, **{name: value})
    if getattr(args, "study_import_dir", None):
        dirs = tuple(Path(d).resolve() for d in args.study_import_dir)
        settings = replace(settings, study_import_dirs=dirs)
    if getattr(args, "max_upload_mib", None):
        settings = replace(settings, max_upload_bytes=args.max_upload_mib * MIB)
    if getattr(args, "dicom_port", None) is not None:
        settings = replace(
            settings,
            dicom_port=args.dicom_port,
            ae_title=args.ae_title,
            allowed_aes=tuple(args.allow_ae),
            pacs_username=args.pacs_user,
            dicom_secondary_capture=args.dicom_accept_sc,
            max_dicom_bytes=args.dicom_max_mib * MIB,
        )
    return settings


def run_serve(args: argparse.Namespace) -> int:
    import uvicorn

    settings = settings_from_args(args)
    if args.workers < 1:
        raise ConfigError("--workers must be at least 1")
    if settings.model_path is not None and settings.model_backend != "auto":
        from vcfnet.serve.ml import model_service

        # a pinned backend that is not there is a setting to fix, not a model to report 503 for;
        # loaded into the process-wide service, which the app below (one worker) then uses
        model_service(settings.model_path, settings.model_backend).predictor()
    if args.demo is not None:
        from vcfnet.serve.demo import prepare_demo

        settings, passwords = prepare_demo(
            settings, Path(args.demo), data_given=args.data is not None
        )
        print("vcfnet serve --demo: synthetic data only. Accounts (passwords shown once):")
        for username, password in passwords.items():
            print(f"  {username:18s} {password}")
    if args.host not in ("127.0.0.1", "localhost", "::1") and not settings.secure_cookies:
        log.warning("listening on %s without --secure-cookies: put it behind TLS", args.host)
    if args.workers == 1:
        from vcfnet.serve.app import create_app

        app = create_app(settings)
        with dicom_receiver(app.state.vcfnet, args.host):
            uvicorn.run(app, host=args.host, port=args.port, proxy_headers=True)
        return 0
    from vcfnet.serve.app import build_state

    state = build_state(settings)  # migrates once, before the workers race to it
    os.environ[SETTINGS_ENV] = json.dumps(asdict(settings), default=str)
    with dicom_receiver(state, args.host):  # in this (the parent) process only
        uvicorn.run(
            "vcfnet.serve.app:app_from_environment",
            factory=True,
            host=args.host,
            port=args.port,
            workers=args.workers,
            proxy_headers=True,
        )
    return 0


@contextmanager
def dicom_receiver(state, host: str) -> Iterator[None]:
    """The DICOM C-STORE receiver (if a --dicom-port is given) and the sender of results to the
    PACS (``serve.pacs_send``) in background threads while the web server runs."""
    from vcfnet.serve.pacs_send import PacsSender

    with PacsSender(state):
        if state.settings.dicom_port is None:
            yield
            return
        with _receiver(state, host):
            yield


@contextmanager
def _receiver(state, host: str) -> Iterator[None]:
    from vcfnet.serve.dicom_receiver import DicomReceiver

    receiver = DicomReceiver.from_state(state, host=host)
    port = receiver.start()
    print(f"DICOM receiver: AE title {state.settings.ae_title} on {host}:{port}", flush=True)
    try:
        yield
    finally:
        receiver.stop()


# ------------------------------------------------------------------------------------------ users


def add_users_arguments(parser: argparse.ArgumentParser) -> None:
    from vcfnet.serve.models import ROLES

    _add_location_arguments(parser)
    sub = parser.add_subparsers(dest="users_command", metavar="ACTION", required=True)
    add = sub.add_parser("add", help="add an account")
    add.add_argument("username")
    add.add_argument("--role", required=True, choices=ROLES)
    add.add_argument("--hospital", default="", help="hospital (clinicians share its cases)")
    add.add_argument("--name", default="", help="full name shown on reports")
    _add_password_arguments(add)
    actions = [add, sub.add_parser("list", help="list accounts")]
    for action, text in (("disable", "disable an account"), ("enable", "enable an account")):
        actions.append(sub.add_parser(action, help=text))
        actions[-1].add_argument("username")
    reset = sub.add_parser("reset-password", help="set a new password (logs the user out)")
    reset.add_argument("username")
    _add_password_arguments(reset)
    key = sub.add_parser("api-key", help="make an API key for scripts (printed once)")
    key.add_argument("username")
    key.add_argument("--name", default="cli", help="what the key is for (shown on /account)")
    for action in (*actions, reset, key):
        _add_location_arguments(action, default=argparse.SUPPRESS)


def _add_password_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    group.add_argument(
        "--random-password", action="store_true", help="generate one and print it once"
    )


def read_new_password(args: argparse.Namespace) -> tuple[str, bool]:
    """(password, generated) from stdin, a generator or the terminal (asked twice)."""
    from vcfnet.serve.security import random_password

    if args.random_password:
        return random_password(), True
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\n"), False
    if not sys.stdin.isatty():
        raise ConfigError("no terminal: pass --password-stdin or --random-password")
    first = getpass.getpass("New password: ")
    if first != getpass.getpass("Repeat it: "):
        raise ConfigError("the passwords differ; try again")
    return first, False


def run_users(args: argparse.Namespace) -> int:
    from vcfnet.serve import crud, security
    from vcfnet.serve.db import make_engine, make_session_factory, session_scope
    from vcfnet.serve.migrations import upgrade_database

    settings = settings_from_args(args)
    engine = make_engine(settings.database_url)
    upgrade_database(engine)
    actor = crud.Actor(None, "cli")
    try:
        with session_scope(make_session_factory(engine)) as db:
            return _users_action(db, settings, args, actor)
    except (
        crud.NotFoundError,
        crud.ConflictError,
        crud.InvalidInputError,
        security.WeakPasswordError,
    ) as exc:
        raise ConfigError(str(exc)) from exc


def _users_action(db, settings, args: argparse.Namespace, actor) -> int:
    from vcfnet.serve import crud

    action = args.users_command
    if action == "list":
        for user in crud.list_users(db):
            state = "active" if user.is_active else "disabled"
            print(f"{user.username}\t{user.role}\t{user.hospital}\t{state}")
        return 0
    if action == "add":
        password, generated = read_new_password(args)
        crud.create_user(
            db,
            settings,
            username=args.username,
            password=password,
            role=args.role,
            hospital=args.hospital,
            display_name=args.name,
            actor=actor,
        )
    else:
        user = crud.get_user_by_name(db, args.username)
        if action == "api-key":
            from vcfnet.serve.security import create_api_key

            key, _ = create_api_key(db, user, args.name)
            crud.audit(db, actor, "apikey.create", detail=f"for {user.username}")
            print(f"api-key: {user.username}\t{key}")
            return 0
        if action in ("disable", "enable"):
            crud.set_user_active(db, user, action == "enable", actor)
            print(f"{action}d {user.username}")
            return 0
        password, generated = read_new_password(args)
        crud.set_password(db, settings, user, password, actor)
    print(f"{action}: {args.username}" + (f"\tpassword: {password}" if generated else ""))
    return 0
