"""Persistence: the SQL database of gate results and the artifact store."""
