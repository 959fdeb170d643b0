"""API areas; each module exposes ``ROUTES`` (a list of :class:`kloudless.server.app.Route`)."""
