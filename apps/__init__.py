"""Command-line fronts of evdet, installed as the package ``evdet.apps``."""
