import Foundation
import Prometheus
import Synchronization
import VestnikCore

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
    private let writeBatches: Counter
    private let writes: Counter
    private let writeBatchReruns: Counter
    /// The store's batching totals, read at every scrape (``render()``).
    private let writeStatistics: @Sendable () -> WriteBatchStatistics
    /// What the counters were last advanced to.
    private let reported = Mutex(WriteBatchStatistics())

    package init(writeStatistics: @escaping @Sendable () -> WriteBatchStatistics = { WriteBatchStatistics() }) {
        self.writeStatistics = writeStatistics
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
        writeBatches = registry.makeCounter(
            descriptor: name("store_write_batches", "total", "Write transactions of the store's single writer (each durable commit carries a batch)."))
        writes = registry.makeCounter(descriptor: name("store_writes", "total", "Writes that joined a batch; divided by batches: writes per commit."))
        writeBatchReruns = registry.makeCounter(
            descriptor: name("store_write_batch_reruns", "total", "Batches run again because a write in them failed."))
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
        // The store counts for itself; its counters advance here by what it counted since. Read
        // under the lock, so concurrent scrapes cannot both add the same writes.
        let (before, now) = reported.withLock { reported in
            let now = writeStatistics()
            defer { reported = now }
            return (reported, now)
        }
        if now.batches > before.batches { writeBatches.increment(by: Int64(now.batches - before.batches)) }
        if now.writes > before.writes { writes.increment(by: Int64(now.writes - before.writes)) }
        if now.reruns > before.reruns { writeBatchReruns.increment(by: Int64(now.reruns - before.reruns)) }
        var buffer: [UInt8] = []
        registry.emit(into: &buffer)
        return buffer
    }
}
