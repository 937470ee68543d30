"""Scrolling widgets whose content grows without re-laying-out the whole screen.

Textual declares ``Widget.virtual_size`` with ``layout=True``: every time a log gains a line or the
inbox gains a row, the *screen* is reflowed on the next frame (about 40 ms of CPU for this app's
widget tree, seven times that in wall time on a busy machine).  For a scroll view with a fixed
outer size that is wasted work: only its scrollbars change.  Such a widget re-declares
``virtual_size`` with :func:`virtual_size_without_reflow` and updates the scrollbars itself, asking for a layout only when
a scrollbar appears or disappears (which does change the content region).

Relies on ``Widget._scroll_update`` (Textual is pinned exactly in pyproject.toml; a test scrolls a
growing transcript and inbox and checks the last line is on screen).
"""

from __future__ import annotations

from textual.geometry import Size
from textual.reactive import Reactive
from textual.widget import Widget


def virtual_size_without_reflow() -> Reactive[Size]:
    """A ``virtual_size`` reactive that repaints instead of reflowing (declare it in the widget's class body).

    A class attribute of the widget itself, not of a mixin: Textual collects default CSS along the
    first-base chain only, so a mixin base would silently drop the scroll view's own CSS.
    """
    return Reactive(Size(0, 0), layout=False, repaint=True)


def update_scrollbars(widget: Widget, new: Size) -> None:
    """``watch_virtual_size`` body: resize scrollbars in place; reflow only when one is shown or hidden."""
    if not widget.is_mounted or not widget.container_size:
        widget.refresh(layout=True)  # not laid out yet: the first layout sizes everything
        return
    shown = (widget.show_horizontal_scrollbar, widget.show_vertical_scrollbar)
    widget._scroll_update(new)
    if (widget.show_horizontal_scrollbar, widget.show_vertical_scrollbar) != shown:
        widget.refresh(layout=True)
