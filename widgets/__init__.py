"""embgeo.widgets: ipywidgets + plotly dashboards built on embgeo.analysis."""

from ._controller import Card, DashboardController
from .app import DashboardApp
from .dashboard import Dashboard

__all__ = ["Card", "Dashboard", "DashboardApp", "DashboardController"]
