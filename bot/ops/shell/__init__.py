"""``triage-bot shell``: every verb in a text console, through the production pipeline.

The shell builds the real services and the real Bolt app and feeds it the payloads
Slack would send (slash commands, button clicks, modal submissions, the message
shortcut) with ``AsyncApp.async_dispatch``; the bot's Web API client talks to an
in-process Slack (``bot.sandbox.slack``) whose recorded messages and modals are
rendered here as text. With platform credentials in the environment it acts on the
real platforms; without any (or with ``--sandbox``) it starts the built-in SANDBOX
tenants. Lines come from a terminal (with a prompt) or from standard input (a
script), and EOF or ``quit`` ends the session cleanly.
"""

from bot.ops.shell.run import open_shell, run_shell
from bot.ops.shell.session import Shell

__all__ = ["Shell", "open_shell", "run_shell"]
