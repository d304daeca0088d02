"""``python -m tether`` runs the CLI."""

from tether.cli.main import app

app()
