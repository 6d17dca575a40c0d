"""Operations: Prometheus metrics, rate limits, secrets as files, backup and restore.

`install_operations(app, settings)` (in `gateway.ops.install`) adds the middleware and the
`/metrics` route; `attach_node_metrics` hooks a freshly opened node. Kept import-light: settings
import pieces of this package while they load.
"""
