"""Re-sending a page's widget states once the page has built its widgets.

When a page connects to a kernel that already holds widgets (Voila's page after the notebook ran, a
notebook reopened in JupyterLab), ipywidgets' front-end asks for every widget's state at once (the
control comm's ``request_states``) and then builds the models, loading each one's module first (an
anywidget's, plotly's). A model's comm is registered only once the model is built, so an update the
kernel sends in between (a background task's progress, its status line, its results) reaches no
handler and is dropped without a word: the page keeps the snapshot for good. With 8 sessions starting
on 2 cores that window lasts seconds, and 1-2 of 8 pages stayed at "intrinsic dimension..." while
their kernel had long finished.

:class:`PageSync` is a tiny anywidget placed inside a widget tree. The page creates its view only
after the tree's root model, and therefore every model of the tree, has been built and listens on
its comm; the view then sends ``rendered``, and the kernel answers by re-sending the full state of
every widget in the tree (:func:`resend_states`), so whatever was dropped is replaced by the current
state. plotly's FigureWidget keeps the data and layout it had when created or last displayed (later
edits go out as messages), so both are refreshed from the figure before they are sent.

The same view reports the page's width, when shown and when it changes: plotly's FigureWidget cannot
size itself to its container, so the dashboard sizes its figures from it.
"""

from __future__ import annotations

from copy import deepcopy
from typing import Callable, Iterator

import anywidget
import ipywidgets as W
from plotly.basewidget import BaseFigureWidget

_ESM = """
function render({ model, el }) {
  // the page's width, for the figures (plotly's FigureWidget does not follow its container)
  const page = el.closest(".embgeo-page") || document.body;
  const width = () => Math.round(page.getBoundingClientRect().width);
  // created once every model of the tree is built: ask the kernel for the state it holds now
  let sent = width();
  model.send({ event: "rendered", width: sent });
  let timer = null;
  const observer = new ResizeObserver(() => {
    clearTimeout(timer);
    timer = setTimeout(() => {
      const now = width();
      if (now > 0 && Math.abs(now - sent) >= 16) {
        sent = now;
        model.send({ event: "width", width: now });
      }
    }, 250);
  });
  observer.observe(page);
  return () => { observer.disconnect(); clearTimeout(timer); };
}
export default { render };
"""


class PageSync(anywidget.AnyWidget):
    """An invisible widget that makes the kernel re-send ``root()``'s widget states once the page shows
    it, and reports the page's width (that of the nearest element of class ``embgeo-page``).

    Parameters
    ----------
    root : callable
        Returns the widget whose tree is re-sent (called at each render: the tree can change).
    on_width : callable, optional
        ``on_width(pixels)`` when the page is shown and whenever its width changes by 16 px or more.
    """

    _esm = _ESM

    def __init__(self, root: Callable[[], W.Widget], on_width: Callable[[int], None] | None = None, **kwargs):
        super().__init__(layout=W.Layout(display="none"), **kwargs)
        self._root, self._on_width = root, on_width
        self.on_msg(self._message)

    def _message(self, _widget, content, _buffers) -> None:
        if not isinstance(content, dict):
            return
        event = content.get("event")
        if event == "rendered":
            resend_states(self._root())
        width = content.get("width")
        if event in ("rendered", "width") and self._on_width is not None and isinstance(width, (int, float)) \
                and width > 0:
            self._on_width(int(width))


def widget_tree(root: W.Widget) -> Iterator[W.Widget]:
    """Every open widget reachable from ``root`` through synced traits (children, layouts, styles, ...)."""
    seen: set[int] = set()
    stack = [root]
    while stack:
        widget = stack.pop()
        if not isinstance(widget, W.Widget) or widget.comm is None or id(widget) in seen:  # closed or met
            continue
        seen.add(id(widget))
        yield widget
        for name in widget.keys:
            value = getattr(widget, name, None)
            if isinstance(value, W.Widget):
                stack.append(value)
            elif isinstance(value, (list, tuple)):
                stack.extend(item for item in value if isinstance(item, W.Widget))


def resend_states(root: W.Widget) -> int:
    """Send the full state of every widget in ``root``'s tree (plotly figures refreshed first); returns
    how many widgets were sent."""
    count = 0
    for widget in widget_tree(root):
        if isinstance(widget, BaseFigureWidget):
            widget._widget_layout = deepcopy(widget._layout_obj._props)
            widget._widget_data = deepcopy(widget._data)
        widget.send_state()
        count += 1
    return count
