"""Tools the model may call: the registry, the built-ins (fetch_url, read_channel,
current_time, calculate), the runner, and the operator's MCP servers."""
