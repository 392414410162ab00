"""The jobq operator dashboard (Flask + htmx)."""
