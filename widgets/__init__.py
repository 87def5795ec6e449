"""embgeo.widgets: ipywidgets + plotly dashboards built on embgeo.analysis.

``_controller`` (the logic and its cache, no view; with ``_colours`` and ``_search``) and ``_upload``
(the size-checked file button and the reader of uploaded bytes) < the tab views (``_summary_views``,
``_projection_view``, ``_transforms_view``, ``_index_view``, ``_compare_view``, drawing with
``_figures``) < ``dashboard`` (the tabbed container) < ``app`` (the Voila app: a dataset picker and an
upload above a dashboard). Imports only public names of ``embgeo.analysis``.
"""

from ._controller import DashboardController
from .app import DashboardApp
from .dashboard import Dashboard

__all__ = ["Dashboard", "DashboardApp", "DashboardController"]
