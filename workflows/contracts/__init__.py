"""The activity contract, one module per kind of activity: each activity's name, input and
result. A module's name starts the names of its activities (`github.create_repository` is in
contracts/github.py, implemented in activities/github.py). Only references cross into a
workflow's history, never a secret: activities fetch credentials and secret values themselves."""
