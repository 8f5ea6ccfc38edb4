"""Operating Shipyard: tools that look at a running installation from outside the API and the
worker, using the same clients and settings they do (`shipyard doctor`)."""
