"""`vegw dashboard`'s parts: server (aiohttp pages, API, live events),
history (flash-log charts over MQTT), alerts (webhook/ntfy hooks),
simfleet (simulated gateways for tests, benchmark and demos), and the
page's own assets in static/ and templates/ (no CDN, no third-party JS)."""
