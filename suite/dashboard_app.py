"""The dashboard's server: MLflow's own app, with its pages opening in the training (classic) view.

MLflow 3.17's UI decides between its GenAI view (Overview, Evaluations, traces) and its model
training view from a ``workflowType``: the URL's ``?workflowType=`` when a link carries it,
else the browser's ``localStorage["mlflow.workflowType_v1"]``, which starts as ``"genai"``
(``main.*.js``: ``useLocalStorage({key: "mlflow.workflowType", version: 1, initialValue: GENAI})``;
the experiment's ``mlflow.experimentKind`` tag is read only when the sidebar's workflow switch
is off, and 3.17 ships it on). A run opened from the runs table carries no query, so it opened
in the GenAI view. This app serves MLflow's ``index.html`` with one inline script that sets the
stored choice to the training view when the browser has none yet; a choice made with the
sidebar's switch is kept. ``mlflow server --app-name suite`` runs it (entry point ``mlflow.app``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

WORKFLOW_STORAGE_KEY = "mlflow.workflowType_v1"
TRAINING_WORKFLOW = "machine_learning"
_KEY, _VALUE = json.dumps(WORKFLOW_STORAGE_KEY), json.dumps(json.dumps(TRAINING_WORKFLOW))  # stored as JSON text
DEFAULT_VIEW_SCRIPT = f"<script>try{{if(localStorage.getItem({_KEY})===null)localStorage.setItem({_KEY},{_VALUE})}}catch(e){{}}</script>"


def index_html(original: str) -> str:
    """MLflow's page with the default-view script first in its head (before the deferred bundle reads the choice)."""
    return original.replace("<head>", "<head>" + DEFAULT_VIEW_SCRIPT, 1)


def create_app() -> Any:
    """MLflow's server app (FastAPI around its Flask app, as ``mlflow server`` builds it), its page view replaced."""
    from flask import Response
    from mlflow.server import app as flask_app
    from mlflow.server.fastapi_app import create_fastapi_app

    page = Path(flask_app.static_folder) / "index.html"

    def serve() -> Response:
        return Response(index_html(page.read_text(encoding="utf-8")), mimetype="text/html")

    flask_app.view_functions["serve"] = serve
    return create_fastapi_app(flask_app)
