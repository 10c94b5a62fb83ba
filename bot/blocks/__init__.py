"""Pure Block Kit builders: neutral incident objects in, Slack ``blocks`` (list of dicts) out.

Nothing here talks to Slack; every builder enforces Slack's limits (50 blocks, 3,000 characters
per section text, 150 per header) by truncating with a count, never by failing.
"""
