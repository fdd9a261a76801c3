"""The web console: the control plane's runs and sites, the ledger's spend and the
simulator's studies, in a browser, under ``/ui``.

Server-rendered pages (Jinja2) made live by htmx, which the package ships
(``static/htmx.min.js``; no Node at run time, no CDN). A person signs in with an
API token and gets a session cookie; the console then enforces the API's own
roles over the same store (see docs/console.md).
"""

from archipel.console._app import PREFIX, create_console, mount
from archipel.console._assets import HTMX_SHA256, HTMX_VERSION
from archipel.console._fleet import FleetPlanner
from archipel.console._simulations import Simulator
from archipel.console._spend import Spend
from archipel.console._traffic import GatewayMetrics

__all__ = [
    "FleetPlanner",
    "GatewayMetrics",
    "HTMX_SHA256",
    "HTMX_VERSION",
    "PREFIX",
    "Simulator",
    "Spend",
    "create_console",
    "mount",
]
