"""Commands of the web layer."""
