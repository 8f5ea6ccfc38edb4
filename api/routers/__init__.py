"""One router per resource, each carrying its full path so metrics see the whole template."""

API_PREFIX = "/api/v1"
