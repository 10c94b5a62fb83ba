"""The Slack face of gpu-risk: Bolt app, listeners, notifier, HTTP server and Socket Mode."""
