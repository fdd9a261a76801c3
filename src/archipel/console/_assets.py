"""The vendored front-end code: which htmx the package ships, pinned by its digest.

``scripts/console/vendor.sh`` fetches exactly this file from the npm registry
(``npm pack htmx.org@HTMX_VERSION``, ``dist/htmx.min.js``); a test checks that
the shipped file has this digest, so the build stays reproducible.
"""

HTMX_VERSION = "2.0.11"
HTMX_SHA256 = "d6fdc75f204e6bdefa99b69bf1e6d4ac69b8a364f77929f45c13476b4000f717"
