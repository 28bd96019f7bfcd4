"""Thin click commands: parse, validate, call one library function, print."""
