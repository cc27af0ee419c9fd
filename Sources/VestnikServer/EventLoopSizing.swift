import NIOCore

extension ServerConfiguration {
    /// Sizes NIO's process-wide event loop group (which Hummingbird, the PostgreSQL pool and the
    /// bot client share) from ``eventLoops``, and returns the size in effect.
    ///
    /// NIO reads the size once, when the group is first used, and traps if it is set twice, so
    /// only `vestnik serve` calls this, first thing; servers started in-process by tests keep
    /// NIO's default. An operator's `NIO_SINGLETON_GROUP_LOOP_COUNT` is kept unless
    /// `--event-loops` or `VESTNIK_EVENT_LOOPS` says otherwise.
    package func sizeProcessEventLoops(environment: [String: String]) -> Int {
        if let eventLoops {
            NIOSingletons.groupLoopCountSuggestion = eventLoops
        } else if environment["NIO_SINGLETON_GROUP_LOOP_COUNT"] == nil {
            NIOSingletons.groupLoopCountSuggestion = Self.defaultEventLoops(cores: System.coreCount)
        }
        return NIOSingletons.groupLoopCountSuggestion
    }
}
