extension Duration {
    /// The duration in whole milliseconds, rounded toward zero: how durations go into settings
    /// and signals that count in milliseconds (PostgreSQL's `statement_timeout`, heartbeat
    /// intervals between nodes).
    public var wholeMilliseconds: Int64 {
        components.seconds * 1000 + components.attoseconds / 1_000_000_000_000_000
    }
}
