"""embgeo: an embedding-geometry lab for Jupyter.

``embgeo.analysis`` computes (no UI imports); ``embgeo.widgets`` shows it (ipywidgets + plotly);
``embgeo.cli`` is the ``embgeo`` command.
"""

__version__ = "0.1.0"
