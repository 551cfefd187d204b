import Foundation
import Metrics
import Prometheus

/// The process-wide Prometheus registry behind swift-metrics, bootstrapped on first use.
public enum WahostMetrics {
    /// Every metric recorded through swift-metrics in this process.
    public static let registry: PrometheusCollectorRegistry = {
        let registry = PrometheusCollectorRegistry()
        var factory = PrometheusMetricsFactory(registry: registry)
        factory.nameAndLabelSanitizer = { label, dimensions in
            (sanitize(label), dimensions.map { (sanitize($0.0), $0.1) })
        }
        MetricsSystem.bootstrap(factory)
        return registry
    }()

    /// The text exposition format of every metric.
    public static func text() -> String { registry.emitToString() }

    /// Prometheus names allow `[a-zA-Z0-9_:]`; Hummingbird's `hb.requests` becomes `hb_requests`.
    private static func sanitize(_ name: String) -> String {
        String(
            name.unicodeScalars.map { scalar -> Character in
                switch scalar {
                case "a"..."z", "A"..."Z", "0"..."9", "_", ":": Character(scalar)
                default: "_"
                }
            })
    }
}
