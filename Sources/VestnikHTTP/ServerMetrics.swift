import Foundation
import Prometheus

/// The server's Prometheus metrics, exposed at `GET /metrics`.
package final class ServerMetrics: Sendable {
    package let registry: PrometheusCollectorRegistry
    private let responses2xx: Counter
    private let responses4xx: Counter
    private let responses5xx: Counter
    package let messagesSent: Counter
    package let streamConnections: Gauge
    package let streamConnectionsTotal: Counter
    package let slowConsumerDisconnects: Counter

    package init() {
        let registry = PrometheusCollectorRegistry()
        self.registry = registry
        func name(_ metric: String, _ unit: String, _ help: String) -> MetricNameDescriptor {
            MetricNameDescriptor(namespace: "vestnik", metricName: metric, unitName: unit, helpText: help)
        }
        let responses = name("http_responses", "total", "HTTP responses by status class.")
        responses2xx = registry.makeCounter(descriptor: responses, labels: [("class", "2xx")])
        responses4xx = registry.makeCounter(descriptor: responses, labels: [("class", "4xx")])
        responses5xx = registry.makeCounter(descriptor: responses, labels: [("class", "5xx")])
        messagesSent = registry.makeCounter(descriptor: name("messages_sent", "total", "Messages accepted and stored."))
        streamConnections = registry.makeGauge(descriptor: name("stream_connections", "", "Open realtime stream connections."))
        streamConnectionsTotal = registry.makeCounter(descriptor: name("stream_connections", "total", "Realtime stream connections accepted."))
        slowConsumerDisconnects = registry.makeCounter(
            descriptor: name("stream_slow_consumer_disconnects", "total", "Streams closed because the client did not keep up."))
    }

    func countResponse(status: Int) {
        switch status {
        case 200..<400: responses2xx.increment()
        case 400..<500: responses4xx.increment()
        default: responses5xx.increment()
        }
    }

    /// The Prometheus text exposition.
    package func render() -> [UInt8] {
        var buffer: [UInt8] = []
        registry.emit(into: &buffer)
        return buffer
    }
}
