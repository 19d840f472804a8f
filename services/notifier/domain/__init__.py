"""The notifier's rules, pure: no I/O, no clock. One module per concern:

- `obligations`: what a unit has to do by when (`notice-<obligation_id>` streams), folded from
  the upstream facts the subscribers record, stale and repeated facts ignored;
- `calendar`: the reminders each obligation has (when, to whom, why) and where each stands;
- `reminders`: claiming a reminder once, recording each channel's outcome (`reminder-<id>`);
- `messages`: what a reminder says (the facts the templates are filled with);
- `contacts`: masking and checking addresses.
"""
