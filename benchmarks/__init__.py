"""volsal benchmark harness: each method against its floor and its anchors (see README.md)."""
