"""The Typer command-line interface. Modules here parse, render and prompt; nothing more."""
