"""The commands of ``resultkit`` (one module per group); ``resultkit.cli`` parses and dispatches."""
