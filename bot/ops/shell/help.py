"""The shell's own help: its commands beside the /triage ones."""

from __future__ import annotations

SHELL_HELP = """\
Shell commands (everything else is a /triage command; the leading "/triage" is optional):
  /triage <verb> …            run a command, e.g. `assign dd:<id> to @bob`, `show xpanse:5471`
  help [verb]                 this text; `help assign` (or `/triage help`) prints the bot's own help
  cards                       list the cards on screen, numbered, with their buttons
  card <n>                    show card #n again
  press <button> [#]<n>       press a button on card #n (latest card if omitted); `click` works too.
                              Buttons by label or id: press "Assign to me" 1 · press assign-me 1 ·
                              press unassign #2 · press refresh · press resolve 3 · press mute 1 ·
                              press unmute 1 · press acknowledge 2 · press reopen 2 · press confirm
                              Buttons ending in … open a form: answer each field (blank skips an
                              optional one, `cancel` closes the form).
  shortcut <message text>     run "Triage this" on a message with that text
{rotate}
  as @<person>                act as someone else (you start as {user})
  storm <n>                   replay n webhook alerts at once (sandbox): cards, then digests
  reconcile [n] · remind      change card #n's item outside Slack, reconcile · nudge as if 30m had passed
  home                        open your App Home tab: your open items, with their buttons
  paste <link> · undo         paste a Datadog/Kibana/Xpanse link (its unfurl) · press the latest Undo
  quit                        leave (EOF too)"""
