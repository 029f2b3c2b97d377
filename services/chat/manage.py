#!/usr/bin/env python
"""Django's command-line utility for the chat example project.

Switchyard runs every command with its settings layer
(``DJANGO_SETTINGS_MODULE=switchyard.settings`` over ``chatsite.settings``);
``scripts/stack manage ARGS`` does that for a running native stack.
"""
import os
import sys


def main():
    """Run a management command; settings come from ``chatsite.settings`` unless the environment names others."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatsite.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
