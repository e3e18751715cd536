"""`musilingo serve`: the web app over a run (app.py builds it, command.py launches it)."""
