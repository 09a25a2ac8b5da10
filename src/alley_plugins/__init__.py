"""alley's default plugins: each is registered like any installed plugin and can be
replaced (implement the same ``firstresult`` hook) or disabled by name."""
