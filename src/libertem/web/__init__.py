"""A web GUI for interactive exploration: ``libertem-server``.

The server (:mod:`libertem.web.server`, tornado) is a client of
:class:`~libertem.api.Context` like any script: it opens datasets from a folder,
runs UDFs with ``run_udf_iter`` and sends their partial results to the browser
over a WebSocket as binary images. The front end (HTML, CSS and JavaScript built
from the TypeScript sources in ``web/`` of the repository) is served from
``static/``. Start it with ``libertem-server`` or ``python -m libertem.web``; see
``docs/gui.md``.
"""
