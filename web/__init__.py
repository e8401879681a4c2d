"""The web page and REST API over the detection and generation libraries (``forgelab serve``)."""
