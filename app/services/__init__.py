"""The services every front end (desktop, CLI, API) uses, typed against :class:`app.services.surface.Core`."""
