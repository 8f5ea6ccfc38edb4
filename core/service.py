"""How Shipyard's API names itself on /healthz: `shipyard doctor` reads it back through
SHIPYARD_PUBLIC_URL to tell this API from any other server answering at that address."""

SERVICE_NAME = "shipyard"
