"""One module per top-level command; the module name is the command name, `command` its object."""
