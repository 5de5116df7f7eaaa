"""`neko serve`: correction as an HTTP service (FastAPI + uvicorn) with dynamic micro-batching, health,
Prometheus metrics, OpenAPI docs and a web page; `neko.serve.app.create_app` builds the ASGI app."""
