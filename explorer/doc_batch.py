"""Changes to a Bokeh document sent together, with the document's model graph walked only when they changed it.

`pn.io.hold(freeze=True)` batches a refresh's changes and defers Bokeh's walk over every model of the document
(`doc.models.recompute()`) to the end of the block, but it then walks them whether or not anything changed. The
explorer refreshes every second, and most refreshes change nothing or only plain values, so that walk was the
server's largest cost while a run trained beside it (py-spy on the watched digits quick start: 338 of the server's
651 samples; docs/benchmarks.md, "Watching a run"). Here the walk happens only when a change
asked for it: a change to a property that holds models (Bokeh's `invalidate`) or Panel's own freeze around one.
"""

from __future__ import annotations

import contextlib

import panel as pn


@contextlib.contextmanager
def batched_changes(doc=None):
    """Hold `doc`'s events (default: the current document) for the block; recompute its models at the end only if
    something in the block changed which models the document holds."""
    doc = doc if doc is not None else pn.state.curdoc
    models = getattr(doc, "models", None)
    if models is None or not hasattr(models, "_freeze_count") or "invalidate" in vars(models):
        with pn.io.hold(doc):  # no models to walk, or inside another batch of this document: that one walks
            yield
        return
    asked = []

    def invalidate():  # a property holding models changed: the graph must be walked, once, at the end
        asked.append(True)

    def push_freeze():  # Panel freezes around updates that replace models: the same
        asked.append(True)
        models._freeze_count += 1

    models._freeze_count += 1  # no walk inside the block, whatever nests in it
    models.invalidate, models._push_freeze = invalidate, push_freeze
    try:
        with pn.io.hold(doc):
            yield
    finally:
        vars(models).pop("invalidate", None)  # back to the class's methods
        vars(models).pop("_push_freeze", None)
        models._freeze_count -= 1
        if asked and models._freeze_count == 0:
            models.recompute()
