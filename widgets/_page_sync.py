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
  // created once every model of the tree is built: ask the kernel for the state it holds now
  model.send({ event: "rendered" });
  // then the dashboard's width, for the figures (plotly's FigureWidget does not follow its container);
  // the view may not be in the document yet when it renders, so wait until it is placed
  let observer = null, timer = null, sent = 0, tries = 0;
  const report = (page) => {
    const now = Math.round(page.getBoundingClientRect().width);
    if (now > 0 && Math.abs(now - sent) >= 4) {
      sent = now;
      model.send({ event: "width", width: now });
    }
  };
  const place = () => {
    const page = el.isConnected ? el.closest(".embgeo-page") : null;
    if (!page) {
      if (tries++ < 600) timer = setTimeout(place, 50);  // 30 s
      return;
    }
    report(page);
    observer = new ResizeObserver(() => {
      clearTimeout(timer);
      timer = setTimeout(() => report(page), 250);
    });
    observer.observe(page);
  };
  place();
  return () => { if (observer) observer.disconnect(); clearTimeout(timer); };
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
        ``on_width(pixels)`` once the view is placed in the page and whenever the width of the element
        of class ``embgeo-page`` around it changes by 4 px or more (a scroll bar coming or going).
    """

    _esm = _ESM

    def __init__(self, root: Callable[[], W.Widget], on_width: Callable[[int], None] | None = None, **kwargs):
        super().__init__(layout=W.Layout(display="none"), **kwargs)
        self._root, self._on_width = root, on_width
        self.on_msg(self._message)

    def _message(self, _widget, content, _buffers) -> None:
        if not isinstance(content, dict):
            return
        event, width = content.get("event"), content.get("width")
        if event == "rendered":
            resend_states(self._root())
        elif event == "width" and self._on_width is not None and isinstance(width, (int, float)) and width > 0:
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
