"""{{ app_name }}: a FastAPI service deployed by Shipyard."""

from fastapi import FastAPI

app = FastAPI(title="{{ app_name }}")


@app.get("/healthz")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@app.get("/")
def index() -> dict[str, str]:
    return {"app": "{{ app_slug }}", "tenant": "{{ tenant }}"}
