"""``create_app(settings)``: the FastAPI application of ``vcfnet serve``.

At start: the database is migrated to the newest revision (Alembic), the data folder is created
and swept of files that no row names (left by a crash between writing a file and its commit), and
the pseudonym key is resolved. The model is loaded once per process on first use.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from sqlalchemy import select
from starlette.exceptions import HTTPException
from starlette.templating import Jinja2Templates

from vcfnet.serve import crud, ingest, ml, model_admin, pacs, retention, security
from vcfnet.serve.analysis_jobs import KIND, analysis_handler
from vcfnet.serve.api.deps import AppState, LoginRequiredError
from vcfnet.serve.db import make_engine, make_session_factory
from vcfnet.serve.jobs import JobFailedError, JobRunner
from vcfnet.serve.middleware import SecurityHeadersMiddleware
from vcfnet.serve.migrations import upgrade_database
from vcfnet.serve.models import Analysis, Case
from vcfnet.serve.settings import Settings
from vcfnet.serve.storage import Storage, open_storage, sweep_local

log = logging.getLogger(__name__)

PACKAGE_DIR = Path(__file__).resolve().parent
NOTICE = "Research software, not a medical device."


def create_app(settings: Settings) -> FastAPI:
    app = FastAPI(
        title="vcfnet",
        summary="AI second reader for vertebral compression fractures. " + NOTICE,
        docs_url=None,  # Swagger UI loads scripts from a CDN; the schema stays available
        redoc_url=None,
        openapi_url="/api/v1/openapi.json",
        # the upload limit plus room for the form's other fields and multipart boundaries
        max_body_size=settings.max_upload_bytes + 65536,
        lifespan=run_jobs,
    )
    app.state.vcfnet = build_state(settings)
    app.add_middleware(SecurityHeadersMiddleware)
    app.mount("/static", StaticFiles(directory=PACKAGE_DIR / "static"), name="static")
    from vcfnet.serve.api.routes import (
        api_jobs,
        api_suggest,
        api_v1,
        pages_admin,
        pages_admin_model,
        pages_auth,
        pages_cases,
        pages_pacs,
        pages_reads,
        pages_reports,
        pages_studies,
        pages_study_import,
    )

    pages = (pages_auth, pages_reports, pages_cases, pages_reads, pages_studies, pages_study_import)
    pages += (pages_pacs, pages_admin, pages_admin_model)
    for module in (*pages, api_v1, api_jobs, api_suggest):
        app.include_router(module.router)
    add_error_handlers(app)

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> dict:
        return {"status": "ok"}

    return app


def build_state(settings: Settings) -> AppState:
    from vcfnet.data.pseudonym import resolve_id_key

    data_dir = Path(settings.data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    engine = make_engine(settings.database_url)
    upgrade_database(engine)
    factory = make_session_factory(engine)
    storage = open_storage(settings)
    sweep_orphan_files(factory, storage, data_dir / "tmp")
    templates = Jinja2Templates(directory=PACKAGE_DIR / "templates")
    templates.env.globals["notice"] = NOTICE
    state = AppState(
        settings=settings,
        session_factory=factory,
        storage=storage,
        models=ml.model_service(settings.model_path, settings.model_backend),
        id_key=resolve_id_key(settings.id_key),
        templates=templates,
    )
    state.jobs = make_job_runner(state)
    use_active_model(state)
    return state


def use_active_model(state: AppState) -> None:
    """The admin's active model (if one was installed) instead of ``--model``."""
    try:
        with state.session_factory() as db:
            model_admin.sync_active_model(db, state)
    except Exception:  # the server still starts; analyses say what is wrong
        log.exception("the admin's active model could not be loaded; using --model")


def make_job_runner(state: AppState) -> JobRunner:
    """The job workers of this process (started by the app's lifespan, or by the first job)."""
    settings = state.settings
    return JobRunner(
        state.session_factory,
        {KIND: analysis_handler(state), retention.JOB_KIND: retention.purge_handler(state)},
        threads=settings.job_workers,
        stale_after_s=settings.job_stale_after_s,
        status_of=job_error_status,
        periodic=(retention.schedule_purge,),
    )


@asynccontextmanager
async def run_jobs(app: FastAPI):
    """The model loaded (its fastest backend chosen) before the first request, and job workers
    running while the server does (uvicorn runs this in every worker process)."""
    runner = app.state.vcfnet.jobs
    await asyncio.to_thread(load_model_now, app.state.vcfnet.models)
    runner.start()
    try:
        yield
    finally:
        runner.stop()


def load_model_now(models: ml.ModelService) -> None:
    """Load the model at start-up; a broken one is logged here and answered 503 per request."""
    if not models.available:
        return
    try:
        models.predictor()
    except (*ml.error_types(), OSError) as exc:
        log.error("the model could not be loaded: %s", str(exc).splitlines()[0])


def sweep_orphan_files(factory, storage: Storage, scratch: Path) -> None:
    with factory() as db:
        known = set(db.scalars(select(Case.image_key)))
        known |= {k for k in db.scalars(select(Case.original_key)) if k}
        known |= {k for k in db.scalars(select(Analysis.heatmap_key)) if k}
    for folder in ("images", "originals", "heatmaps"):
        storage.sweep_orphans(folder, known)
    sweep_local(scratch, set(), scratch)  # scratch files of uploads (an hour old: not in flight)


ERROR_STATUS: dict[type[Exception], int] = {
    crud.NotFoundError: 404,
    crud.ForbiddenError: 403,
    crud.ConflictError: 409,
    crud.InvalidInputError: 422,
    security.WeakPasswordError: 422,
    ml.ModelUnavailableError: 503,
    pacs.PacsError: 502,
    model_admin.ModelUploadError: 422,
}


def error_status(exc: Exception) -> int:
    if isinstance(exc, ingest.IngestError | JobFailedError):
        return exc.status_code
    for kind, status in ERROR_STATUS.items():
        if isinstance(exc, kind):
            return status
    return 422  # vcfnet's InputError/CheckpointError (a box off the image, a broken model)


def job_error_status(exc: Exception) -> int:
    """The status of a failed job's exception: as for a request, 500 for an unexpected one."""
    known = (*ERROR_STATUS, ingest.IngestError, JobFailedError, *ml.error_types())
    return error_status(exc) if isinstance(exc, known) else 500


def error_response(request: Request, status: int, message: str) -> Response:
    """JSON for the API, an HTML page otherwise."""
    if request.url.path.startswith("/api/"):
        return JSONResponse({"detail": message}, status_code=status)
    templates = request.app.state.vcfnet.templates
    return templates.TemplateResponse(
        request, "error.html", {"status": status, "message": message}, status_code=status
    )


def add_error_handlers(app: FastAPI) -> None:
    async def on_login_required(request: Request, exc: LoginRequiredError) -> Response:
        return RedirectResponse("/login", status_code=302)

    async def on_http_error(request: Request, exc: HTTPException) -> Response:
        response = error_response(request, exc.status_code, str(exc.detail))
        for key, value in (exc.headers or {}).items():
            response.headers[key] = value
        return response

    async def on_library_error(request: Request, exc: Exception) -> Response:
        return error_response(request, error_status(exc), str(exc).splitlines()[0])

    app.add_exception_handler(LoginRequiredError, on_login_required)
    app.add_exception_handler(HTTPException, on_http_error)
    for kind in (*ERROR_STATUS, ingest.IngestError, JobFailedError, *ml.error_types()):
        app.add_exception_handler(kind, on_library_error)


#: environment variable carrying the Settings (JSON) from ``vcfnet serve`` to its workers
SETTINGS_ENV = "VCFNET_SERVE_SETTINGS"


def app_from_environment():
    """The app of one uvicorn worker process (settings passed by ``run_serve``)."""
    from vcfnet.serve.settings import Settings

    values = json.loads(os.environ[SETTINGS_ENV])
    for key in ("data_dir", "model_path"):
        if values.get(key) is not None:
            values[key] = Path(values[key])
    return create_app(Settings(**values))
