"""Renderings of a gate result: JUnit XML, Markdown and a status badge."""
