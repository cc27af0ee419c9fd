import NIOCore

extension ServerConfiguration {
    /// Sizes NIO's process-wide event loop group (which Hummingbird, the pooled PostgreSQL
    /// connections and the bot client share; the PostgreSQL writer has a loop of its own) from
    /// ``eventLoops``, and returns the size in effect.
    ///
    /// NIO reads the size once, when the group is first used, and traps if it is set twice, so
    /// only `vestnik serve` calls this, first thing; servers started in-process by tests keep
    /// NIO's default. An operator's `NIO_SINGLETON_GROUP_LOOP_COUNT` is kept unless
    /// `--event-loops` or `VESTNIK_EVENT_LOOPS` says otherwise, and only if it is a count in
    /// the same 1…256 (NIO would read anything else as "one loop per core", or cap it at 1024).
    package func sizeProcessEventLoops(environment: [String: String]) -> Int {
        if let eventLoops {
            NIOSingletons.groupLoopCountSuggestion = eventLoops
        } else if let raw = environment["NIO_SINGLETON_GROUP_LOOP_COUNT"], let count = Int(raw), Self.eventLoopRange.contains(count) {
            return count
        } else {
            NIOSingletons.groupLoopCountSuggestion = Self.defaultEventLoops(cores: System.coreCount)
        }
        return NIOSingletons.groupLoopCountSuggestion
    }
}
