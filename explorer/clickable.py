"""HTML that reports clicks: the map's legend, the gallery's rows and the selection grid's images select images.

Panel's HTML pane shows markup but sends nothing back. `ClickableHTML` shows the same markup (its `object`) and,
when an element carrying `data-pick="KEY"` (or anything inside one) is clicked, calls each `on_pick` callback with
KEY on the server. A message per click (`model.send_msg`), not a parameter: a second click on the same entry counts.
"""

from __future__ import annotations

from typing import Callable

import param
from panel.custom import JSComponent


STYLE = "[data-pick] { cursor: pointer; } [data-pick]:hover { background: #eef3fb; }"


class ClickableHTML(JSComponent):
    """An HTML pane whose `data-pick` elements report clicks to `on_pick(callback)` callbacks."""

    object = param.String(default="", doc="The HTML shown (trusted: built by explorer.views, escaped there).")

    _esm = """
    export function render({ model, el }) {
      const box = document.createElement("div");
      box.className = "clickable-html";
      box.innerHTML = model.object;
      box.addEventListener("click", (event) => {
        const target = event.target.closest("[data-pick]");
        if (target && box.contains(target)) {
          model.send_msg({pick: target.dataset.pick});
        }
      });
      model.on("object", () => { box.innerHTML = model.object; });
      el.appendChild(box);
    }
    """

    def __init__(self, object: str = "", **params):
        params.setdefault("stylesheets", [STYLE])
        super().__init__(object=object, **params)
        self._pick_callbacks: list[Callable[[str], None]] = []

    def on_pick(self, callback: Callable[[str], None]) -> None:
        """Call `callback(key)` on each click on an element with `data-pick="key"`."""
        self._pick_callbacks.append(callback)

    def pick(self, key: str) -> None:
        """What a click on `key` does (also for tests and notebooks without a browser)."""
        for callback in self._pick_callbacks:
            callback(str(key))

    def _handle_msg(self, data) -> None:
        if isinstance(data, dict) and isinstance(data.get("pick"), str):
            self.pick(data["pick"])
