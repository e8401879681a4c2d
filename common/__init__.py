"""forgelab package."""
