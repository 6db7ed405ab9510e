"""The Connect protocol as every client of ours speaks it (the Python clients, `task-cli`, the agents):
one error hierarchy, the wire's rules, and one HTTP/1.1 transport, sync (stdlib only) and async."""
