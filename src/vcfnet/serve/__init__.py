"""``vcfnet serve``: the web platform (issue 13). ``create_app(settings)`` builds the ASGI app.

Layout (after the FastAPI full-stack template): ``settings`` (one dataclass), ``db`` (engine and
sessions), ``models`` (SQLAlchemy tables), ``migrations`` (Alembic), ``crud`` (queries and
changes), ``security`` (passwords, sessions, CSRF, API keys), ``storage`` (files under the data
folder), ``ingest`` (upload -> de-identified case), ``ml`` (the only door to vcfnet's inference
code), ``analysis`` (model results stored with a case), ``api`` (routes), ``app``.
"""
