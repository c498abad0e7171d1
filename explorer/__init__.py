"""Everything a person looks at: projections, views, the app and the notebook dashboards (`watch` for a run,
`watch_session` for a β_Aug tuning session; the tuning procedure itself is `core.tuning`). Depends on `core`."""


def __getattr__(name):  # the notebook API pulls in Panel and HoloViews: import it only when asked for
    if name in ("watch", "Dashboard", "DashboardError"):
        from . import notebook

        return getattr(notebook, name)
    if name in ("watch_session", "SessionDashboard"):
        from . import session_dashboard

        return getattr(session_dashboard, name)
    raise AttributeError(f"module 'explorer' has no attribute {name!r}")


__all__ = ["watch", "Dashboard", "DashboardError", "watch_session", "SessionDashboard"]
