"""SQL storage: engine, schema, numbered migrations and the repository functions.

Route modules never build SQL: they call the repository modules here (`catalog`, `licences`,
`fleet`, `tokens`, `telemetry`, `popularity`, `manifests`). Another part adds its own tables with a
new numbered migration in `control_plane/db/migrations/` and its own repository module.
"""
