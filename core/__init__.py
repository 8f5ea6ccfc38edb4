"""Shipyard's core: settings, database, tables and domain rules shared by the API and the worker."""
