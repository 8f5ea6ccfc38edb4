"""REST front of Shipyard: validates, authorizes, records intent and starts workflows."""
