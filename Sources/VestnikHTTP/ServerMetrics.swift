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
        responses2xx = registry.makeCounter(name: "vestnik_http_responses_total", labels: [("class", "2xx")])
        responses4xx = registry.makeCounter(name: "vestnik_http_responses_total", labels: [("class", "4xx")])
        responses5xx = registry.makeCounter(name: "vestnik_http_responses_total", labels: [("class", "5xx")])
        messagesSent = registry.makeCounter(name: "vestnik_messages_sent_total", help: "Messages accepted and stored.")
        streamConnections = registry.makeGauge(name: "vestnik_stream_connections", help: "Open realtime stream connections.")
        streamConnectionsTotal = registry.makeCounter(name: "vestnik_stream_connections_total", help: "Realtime stream connections accepted.")
        slowConsumerDisconnects = registry.makeCounter(
            name: "vestnik_stream_slow_consumer_disconnects_total", help: "Streams closed because the client did not keep up.")
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
