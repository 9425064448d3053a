"""The FastAPI app: thin routes over the job store, the runner and the history store.

Routes validate and translate (pydantic in, JSON/HTML out, library errors to 4xx); all the work
happens in `execute.py` on the runner's threads.
"""

from __future__ import annotations

import asyncio
import html
import json
from contextlib import asynccontextmanager
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, FastAPI, File, Form, HTTPException, Query, Request, UploadFile, status
from fastapi.encoders import jsonable_encoder
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from fastapi.routing import APIRoute
from pydantic import TypeAdapter, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Route

from clusterdiv import __version__
from clusterdiv.core.errors import ClusterdivError, CorpusTooLarge
from clusterdiv.service.jobs import JobRecord, JobStore
from clusterdiv.service.schemas import (
    ERROR_RESPONSES,
    HTML_PAGE_ERROR_RESPONSES,
    InputExample,
    JobList,
    JobRequest,
    JobView,
    ScoreJob,
    Spend,
)
from clusterdiv.service.security import (
    BodySizeLimit,
    HostOriginGuard,
    SecurityHeaders,
    StrictJSONError,
    TokenGuard,
    finite_json,
    is_authorized,
    make_auth_dependency,
    redact_access_log,
    strict_json_loads,
)
from clusterdiv.service.settings import ServiceSettings
from clusterdiv.service.worker import JobRunner

_REQUEST = TypeAdapter(JobRequest)
UPLOAD_PARTS = ("file", "reference", "text_field", "id_field", "format", "dataset", "owner", "tags", "options")


class _StrictJSONRequest(Request):
    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            try:
                self._json = strict_json_loads(await self.body())
            except StrictJSONError as exc:  # an HTTPException: FastAPI turns anything else into a bare 400
                raise HTTPException(422, detail=exc.errors) from None
        return self._json


class StrictJSONRoute(APIRoute):
    """A route whose JSON body is read by `strict_json_loads` (FastAPI's is `json.loads`, which
    takes NaN, Infinity, 1e400 and repeated keys)."""

    def get_route_handler(self) -> Any:
        handler = super().get_route_handler()

        async def strict(request: Request) -> Response:
            return await handler(_StrictJSONRequest(request.scope, request.receive))

        return strict


def _allowed_methods(path: str, routes: list[Route]) -> str:
    """Every method of the resource `path` names: all routes of the first template it matches, as
    OpenAPI lists them (Starlette's 405 names only the first route's methods; and `/v1/jobs/upload`
    is the upload, though `/v1/jobs/{job_id}` would match it too)."""
    template = next((route.path for route in routes if route.path_regex.match(path)), None)
    return ", ".join(sorted({method for route in routes if route.path == template for method in route.methods or ()}))


def _summary(kind: str, result: dict[str, Any] | None) -> dict[str, Any] | None:
    if not result:
        return None
    if kind == "score":
        keys = ("n_samples", "n_modes", "score", "score_normalized", "ci95_normalized")
        return {k: result.get(k) for k in keys} | {"failed": (result.get("failed") or {}).get("count", 0)}
    if kind == "compare":
        return {"ranking": [b["name"] for b in sorted(result.get("batches", []), key=lambda b: b.get("rank", 0))]}
    if kind == "select":  # issue 17
        return {"n_selected": result.get("n_selected"), "budget": result.get("budget"),
                "score_normalized": [(result.get(k) or {}).get("score_normalized") for k in ("before", "after")]}
    if kind == "seeds":
        return {k: result.get(k) for k in ("n_lacking", "n_missing", "reference_share_lacking")}
    audit = result.get("tail_audit") or {}
    return {k: audit.get(k) for k in ("n_entries", "n_covered", "n_flagged") if k in audit} or None


def _view(job: JobRecord, store: JobStore, base: str = "/v1/jobs") -> JobView:
    links = {"self": f"{base}/{job.id}"}
    summary = spend = None
    if job.status == "succeeded":
        links |= {"report": f"{base}/{job.id}/report", "markdown": f"{base}/{job.id}/report?format=markdown",
                  "html": f"{base}/{job.id}/report?format=html"}
        if job.kind == "score":
            links["explorer"] = f"{base}/{job.id}/explorer"
        report = store.report(job.id)
        summary = _summary(job.kind, report)
        spend = Spend.from_timings(_timings(report))
    return JobView(**job.model_dump(exclude={"worker", "heartbeat_at"}), summary=summary, links=links, spend=spend)


def _timings(result: dict[str, Any] | None) -> dict[str, Any] | None:
    """A job result's timings: the report's own, or (select's before/after) its first report's."""
    if not isinstance(result, dict):
        return None
    if isinstance(result.get("timings"), dict):
        return result["timings"]
    return next((v["timings"] for v in result.values() if isinstance(v, dict) and isinstance(v.get("timings"), dict)),
                None)


def _markdown_page(title: str, markdown: str) -> str:
    from markdown_it import MarkdownIt

    body = MarkdownIt("commonmark", {"html": False}).enable("table").render(markdown)
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            "<style>body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em}"
            "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:3px 8px}</style>"
            f"</head><body>{body}</body></html>")


def create_app(settings: ServiceSettings | None = None) -> FastAPI:
    settings = settings or ServiceSettings.from_env()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> Any:
        redact_access_log()  # after uvicorn configured logging: ?access_token= never reaches a log line
        store = await asyncio.to_thread(JobStore, settings.db)
        runner = JobRunner(store, settings)
        app.state.store, app.state.runner = store, runner
        await runner.start()
        try:
            yield
        finally:
            await runner.stop()
            store.close()

    app = FastAPI(
        title="clusterdiv",
        version=__version__,
        summary="Diversity of text datasets by LLM semantic clustering: jobs, reports, explorer.",
        lifespan=lifespan,
    )
    # Outermost last: headers on every answer; then Host/Origin, token, body limits, the app.
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes,
                       idle_timeout_s=settings.body_idle_timeout_s, total_timeout_s=settings.body_total_timeout_s)
    app.add_middleware(TokenGuard, token=settings.token)
    app.add_middleware(HostOriginGuard, bind_host=settings.bind_host, allowed_hosts=settings.allowed_hosts)
    app.add_middleware(SecurityHeaders)

    @app.exception_handler(CorpusTooLarge)
    async def _too_large(_: Request, exc: CorpusTooLarge) -> JSONResponse:
        return JSONResponse(status_code=413, content={"detail": str(exc)})

    @app.exception_handler(ClusterdivError)
    async def _library_error(_: Request, exc: ClusterdivError) -> JSONResponse:
        return JSONResponse(status_code=422, content={"detail": str(exc)})

    @app.exception_handler(RequestValidationError)
    async def _invalid_request(_: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse(status_code=422, content={"detail": finite_json(jsonable_encoder(exc.errors()))})

    routes: list[Route] = []  # every route, the /v1 ones included (filled below)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
        headers = dict(exc.headers or {})
        if exc.status_code == status.HTTP_405_METHOD_NOT_ALLOWED:
            headers["Allow"] = _allowed_methods(request.scope["path"], routes)
        return await http_exception_handler(
            request, StarletteHTTPException(exc.status_code, finite_json(exc.detail), headers=headers))

    def store_of(request: Request) -> JobStore:
        return request.app.state.store

    def runner_of(request: Request) -> JobRunner:
        return request.app.state.runner

    @app.head("/healthz", include_in_schema=False)  # load balancers and uptime checks probe with HEAD
    @app.get("/healthz", tags=["health"])
    async def healthz() -> dict[str, str]:
        """Liveness: the process answers."""
        return {"status": "ok", "version": __version__}

    @app.get("/readyz", tags=["health"])
    async def readyz(request: Request) -> JSONResponse:
        """Readiness: the database answers and the job runner is alive (details only with the token)."""
        detailed = is_authorized(request, settings.token)
        try:
            counts = await asyncio.to_thread(store_of(request).counts)
        except Exception as exc:  # noqa: BLE001
            body = {"status": "not ready"} | ({"reason": "database unavailable", "detail": str(exc)} if detailed else {})
            return JSONResponse(status_code=503, content=body)
        if not runner_of(request).alive:
            return JSONResponse(status_code=503, content={"status": "not ready"}
                                | ({"reason": "job runner stopped"} if detailed else {}))
        if not detailed:
            return JSONResponse({"status": "ready"})
        return JSONResponse({"status": "ready", "jobs": counts, "workers": settings.workers,
                             "models": settings.models()})

    api = APIRouter(prefix="/v1", dependencies=[Depends(make_auth_dependency(settings.token))],
                    responses=ERROR_RESPONSES, route_class=StrictJSONRoute)

    def _submit(request: Request, job: Any) -> JobView:
        n = job.n_examples()
        if n > settings.max_examples_per_job:
            raise HTTPException(status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
                                detail=f"the job has {n} examples; this server accepts at most "
                                       f"{settings.max_examples_per_job} per job (split it into several jobs)")
        from clusterdiv.service.execute import resolve_engine, resolve_model

        resolve_model(job.options, settings)  # refuse a disallowed model now, not after queueing
        resolve_engine(job.options, settings)  # and an engine the server was not started with
        from clusterdiv.service.execute import to_examples

        # duplicate ids, blank texts: 422 before queueing, for every list of texts the job has
        if getattr(job, "texts", None) is not None:
            to_examples(job.texts, what="texts")
        if getattr(job, "reference", None):
            to_examples(job.reference, what="reference")
        for name, texts in (getattr(job, "batches", None) or {}).items():
            to_examples(texts, what=f"batch {name!r}")
        record = store_of(request).submit(kind=job.kind, request=job.model_dump(mode="json"), n_examples=n,
                                          dataset=job.dataset, owner=job.owner)
        runner_of(request).notify()
        return _view(record, store_of(request))

    @api.post("/jobs", status_code=202, response_model=JobView, tags=["jobs"])
    async def submit_job(request: Request, job: JobRequest) -> JobView:
        """Submit a `score`, `compare`, `audit-tail`, `select` or `seeds` job with its texts in the JSON body."""
        return await asyncio.to_thread(_submit, request, job)

    @api.post("/jobs/upload", status_code=202, response_model=JobView, tags=["jobs"])
    async def upload_job(
        request: Request,
        file: Annotated[UploadFile, File(description="JSONL, JSON, CSV/TSV, Parquet or text (.gz ok)")],
        # Optional parts typed without `| None`: the schema would offer null, which a multipart part cannot
        # be (a client sending the text "null" would read it as allowed, and get a 422).
        reference: Annotated[UploadFile, File(description="real data to compare with")] = None,
        text_field: Annotated[str, Form()] = None,
        id_field: Annotated[str, Form()] = None,
        format: Annotated[str, Form()] = None,
        dataset: Annotated[str, Form()] = None,
        owner: Annotated[str, Form()] = None,
        tags: Annotated[str, Form(description="comma-separated")] = None,
        options: Annotated[str, Form(description="JobOptions as JSON")] = None,
    ) -> JobView:
        """Submit a `score` job by uploading the corpus file (parsed in memory, never saved)."""
        from clusterdiv.io.corpus import load_corpus_bytes

        form = await request.form()  # FastAPI keeps the last of repeated parts: the others would be dropped
        repeated = [{"type": "repeated_part", "loc": ["body", name], "input": None,
                     "msg": f"form part {name!r} is sent {len(form.getlist(name))} times; send it once"}
                    for name in UPLOAD_PARTS if len(form.getlist(name)) > 1]
        if repeated:
            raise HTTPException(422, detail=repeated)
        try:
            job_options = strict_json_loads(options, loc=("body", "options")) if options else {}
        except StrictJSONError as exc:
            raise HTTPException(422, detail=exc.errors) from None
        except json.JSONDecodeError as exc:
            raise HTTPException(422, detail=[{"type": "json_invalid", "loc": ["body", "options"], "input": options,
                                              "msg": f"options is not JSON: {exc.msg} at character {exc.pos}"}]
                                ) from None

        def parse(upload: UploadFile, data: bytes) -> list[InputExample]:
            # decompression is capped by the body limit too: a small .gz cannot unpack into gigabytes
            corpus = load_corpus_bytes(data, filename=upload.filename or "upload", text_field=text_field,
                                       id_field=id_field, format=format, max_bytes=settings.max_body_bytes,
                                       limit_hint="the server's --max-body-mb")
            return [InputExample(text=e.text, id=e.id, label=e.label) for e in corpus.examples]

        texts = parse(file, await file.read())
        ref = parse(reference, await reference.read()) if reference is not None else None
        try:
            job = ScoreJob(texts=texts, reference=ref, dataset=dataset, owner=owner,
                           tags=[t.strip() for t in (tags or "").split(",") if t.strip()], options=job_options)
        except ValidationError as exc:
            errors = json.loads(exc.json(include_url=False))
            raise HTTPException(422, detail=[{**e, "loc": ["body", *e["loc"]]} for e in errors]) from exc
        return await asyncio.to_thread(_submit, request, job)

    @api.get("/jobs", response_model=JobList, tags=["jobs"])
    async def list_jobs(request: Request, dataset: str | None = None,
                        status_: Annotated[Literal["queued", "running", "succeeded", "failed", "cancelled"] | None,
                                           Query(alias="status")] = None,
                        limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> JobList:
        store = store_of(request)

        def load() -> JobList:
            return JobList(jobs=[_view(j, store) for j in store.list(dataset=dataset, status=status_, limit=limit)])

        return await asyncio.to_thread(load)

    def _job(request: Request, job_id: str) -> JobRecord:
        job = store_of(request).get(job_id)
        if job is None:
            raise HTTPException(404, detail=f"no job {job_id}")
        return job

    @api.get("/jobs/{job_id}", response_model=JobView, tags=["jobs"])
    async def get_job(request: Request, job_id: str) -> JobView:
        """Status and progress; poll until `status` is `succeeded` or `failed`."""
        return await asyncio.to_thread(lambda: _view(_job(request, job_id), store_of(request)))

    def _cancel(request: Request, job_id: str) -> JobView:
        store = store_of(request)
        before = store.cancel(job_id)
        if before is None:
            raise HTTPException(404, detail=f"no job {job_id}")
        if before not in ("queued", "running"):
            raise HTTPException(409, detail=f"job {job_id} is already {before}")
        runner_of(request).cancel(job_id)
        return _view(_job(request, job_id), store)

    @api.post("/jobs/{job_id}/cancel", response_model=JobView, tags=["jobs"])
    async def cancel_job(request: Request, job_id: str) -> JobView:
        """Cancel a queued or running job: it stops at the next example and ends `cancelled`;
        the model answers it already paid for stay in the cache (resubmitting reuses them)."""
        return await asyncio.to_thread(_cancel, request, job_id)

    @api.delete("/jobs/{job_id}", response_model=JobView, tags=["jobs"])
    async def delete_job(request: Request, job_id: str) -> JobView:
        """Same as `POST /v1/jobs/{job_id}/cancel`."""
        return await asyncio.to_thread(_cancel, request, job_id)

    def _finished(request: Request, job_id: str) -> tuple[JobRecord, Any]:
        job = _job(request, job_id)
        if job.status != "succeeded":
            detail = f"job {job_id} is {job.status}" + (f": {job.error}" if job.error else "")
            raise HTTPException(409, detail=detail)
        return job, store_of(request).result(job_id)

    @api.get("/jobs/{job_id}/report", tags=["reports"],
             responses={200: {"content": {"application/json": {}, "text/markdown": {}, "text/html": {}}}})
    async def get_report(request: Request, job_id: str,
                         format: Literal["json", "markdown", "html"] = "json") -> Response:
        """The finished job's report as JSON (the CLI's `--format json`), markdown or HTML."""
        job, result = await asyncio.to_thread(_finished, request, job_id)
        if format == "json":
            return JSONResponse(result.result)
        if format == "markdown":
            return PlainTextResponse(result.markdown, media_type="text/markdown; charset=utf-8")
        if result.exploration is not None:
            return HTMLResponse(_explorer_html(result.exploration), headers=_webgl(result.exploration))
        return HTMLResponse(_markdown_page(f"clusterdiv {job.kind} {job_id}", result.markdown))

    @api.get("/jobs/{job_id}/exploration", tags=["explorer"])
    async def get_exploration(request: Request, job_id: str) -> JSONResponse:
        """The explorer's data: 2-D map points, named clusters, shares versus the reference."""
        _, result = await asyncio.to_thread(_finished, request, job_id)
        if result.exploration is None:
            raise HTTPException(404, detail="only score jobs have an explorer")
        return JSONResponse(result.exploration)

    @api.get("/jobs/{job_id}/explorer", response_class=HTMLResponse, tags=["explorer"],
             responses=HTML_PAGE_ERROR_RESPONSES)
    async def get_explorer(request: Request, job_id: str) -> HTMLResponse:
        """The collapsed-mode explorer page (self-contained: the same file `clusterdiv report --html` writes)."""
        _, result = await asyncio.to_thread(_finished, request, job_id)
        if result.exploration is None:
            raise HTTPException(404, detail="only score jobs have an explorer")
        return HTMLResponse(await asyncio.to_thread(_explorer_html, result.exploration),
                            headers=_webgl(result.exploration))

    @api.get("/datasets", tags=["history"])
    async def list_datasets() -> JSONResponse:
        from clusterdiv.history import HistoryStore

        def load() -> list[dict[str, Any]]:
            with HistoryStore(settings.db) as history:
                return history.datasets()

        rows = await asyncio.to_thread(load)
        return JSONResponse(json.loads(json.dumps(rows, default=str)))

    @api.get("/datasets/{dataset}/history", tags=["history"])
    async def dataset_history(dataset: str, last: Annotated[int | None, Query(ge=1)] = None) -> JSONResponse:
        """Every recorded run of a dataset with its metrics, and its owner and thresholds."""
        from clusterdiv.history import HistoryStore

        def load() -> dict[str, Any]:
            with HistoryStore(settings.db) as history:
                runs = history.runs(dataset, last=last)
                tracking = history.tracking(dataset)
            if not runs and tracking is None:
                raise HTTPException(404, detail=f"no dataset {dataset!r} in the history")
            return {"dataset": dataset,
                    "tracking": tracking.model_dump(mode="json") if tracking else None,
                    "runs": [r.model_dump(mode="json") for r in runs]}

        return JSONResponse(await asyncio.to_thread(load))

    app.include_router(api)
    routes.extend(r for r in [*app.router.routes, *api.routes] if isinstance(r, Route))
    return app


WEBGL_POINTS = 3000  # the explorer template draws scattergl above this many points


def _webgl(exploration: dict[str, Any]) -> dict[str, str]:
    """Mark pages whose map is WebGL, so their CSP allows the `new Function` plotly's regl needs."""
    return {"x-clusterdiv-webgl": "1"} if len(exploration.get("points") or []) > WEBGL_POINTS else {}


def _explorer_html(exploration: dict[str, Any]) -> str:
    from clusterdiv.tasks.explore import render_explorer_html
    from clusterdiv.tasks.explore.model import Exploration

    return render_explorer_html(Exploration.model_validate(exploration))
