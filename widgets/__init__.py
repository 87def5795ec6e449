"""embgeo.widgets: ipywidgets + plotly dashboards built on embgeo.analysis."""
