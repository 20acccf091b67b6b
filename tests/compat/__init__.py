"""Compatibility matrix: each real client against the embedded broker (a package, so that
`compat.helpers` cannot collide with another directory's helpers)."""
