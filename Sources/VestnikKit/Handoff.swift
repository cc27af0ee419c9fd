import Synchronization

/// A bounded single-producer single-consumer channel with back-pressure, used by
/// ``RealtimeStream`` to hand events from the connection task to the consumer.
///
/// - ``send(_:)`` suspends while `capacity` elements are buffered, so a slow consumer slows the
///   socket reads (and eventually the server may drop the connection as a slow consumer, after
///   which the stream resumes from the last delivered position).
/// - ``terminate()`` (called when the consumer stops iterating or its task is cancelled) drops the
///   buffer, makes every later `send` throw `CancellationError` and cancels the producer task.
final class Handoff<Element: Sendable>: Sendable {
    private struct State {
        var buffer: [Element] = []
        var consumer: CheckedContinuation<Element?, any Error>?
        var producer: CheckedContinuation<Void, any Error>?
        /// Set by the producer when it is done; delivered after the buffer drains.
        var completion: Result<Void, any Error>?
        var completionDelivered = false
        var terminated = false
        var producerTask: Task<Void, Never>?
    }

    private enum SendAction {
        case cancelled
        case delivered(CheckedContinuation<Element?, any Error>)
        case buffered
        case suspended
    }

    private enum NextAction {
        case element(Element, CheckedContinuation<Void, any Error>?)
        case end(Result<Void, any Error>?)
        case cancelled
        case suspended
    }

    private let state = Mutex(State())
    private let capacity: Int

    init(capacity: Int) {
        self.capacity = max(1, capacity)
    }

    /// Registers the producer task so ``terminate()`` can cancel it.
    func setProducer(_ task: Task<Void, Never>) {
        let cancelNow = state.withLock { state -> Bool in
            if state.terminated { return true }
            state.producerTask = task
            return false
        }
        if cancelNow { task.cancel() }
    }

    /// Hands `element` to the consumer, suspending while the buffer is full.
    /// Throws `CancellationError` once the consumer is gone.
    func send(_ element: Element) async throws {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            let action = state.withLock { state -> SendAction in
                if state.terminated || state.completion != nil { return .cancelled }
                if let consumer = state.consumer {
                    state.consumer = nil
                    return .delivered(consumer)
                }
                state.buffer.append(element)
                if state.buffer.count < capacity { return .buffered }
                state.producer = continuation
                return .suspended
            }
            switch action {
            case .cancelled: continuation.resume(throwing: CancellationError())
            case .delivered(let consumer):
                consumer.resume(returning: element)
                continuation.resume()
            case .buffered: continuation.resume()
            case .suspended: break
            }
        }
    }

    /// Ends the sequence after the buffered elements: normally (`nil`) or by throwing `error`.
    func finish(throwing error: (any Error)? = nil) {
        let waiting = state.withLock { state -> CheckedContinuation<Element?, any Error>? in
            guard state.completion == nil, !state.terminated else { return nil }
            state.completion = error.map { .failure($0) } ?? .success(())
            state.producerTask = nil
            guard state.buffer.isEmpty, let consumer = state.consumer else { return nil }
            state.consumer = nil
            state.completionDelivered = true
            return consumer
        }
        guard let waiting else { return }
        if let error { waiting.resume(throwing: error) } else { waiting.resume(returning: nil) }
    }

    /// The consumer side: the next element, `nil` at the end, or the producer's error.
    /// Cancelling the consuming task terminates the channel and returns `nil`.
    func next() async throws -> Element? {
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Element?, any Error>) in
                let action = state.withLock { state -> NextAction in
                    if !state.buffer.isEmpty {
                        let element = state.buffer.removeFirst()
                        let producer = state.producer
                        state.producer = nil
                        return .element(element, producer)
                    }
                    if state.terminated || state.completionDelivered { return .end(nil) }
                    if let completion = state.completion {
                        state.completionDelivered = true
                        return .end(completion)
                    }
                    if Task.isCancelled { return .cancelled }
                    state.consumer = continuation
                    return .suspended
                }
                switch action {
                case .element(let element, let producer):
                    producer?.resume()
                    continuation.resume(returning: element)
                case .end(.failure(let error)): continuation.resume(throwing: error)
                case .end: continuation.resume(returning: nil)
                case .cancelled:
                    terminate()
                    continuation.resume(returning: nil)
                case .suspended: break
                }
            }
        } onCancel: {
            terminate()
        }
    }

    /// The consumer is gone: drop everything, wake both sides, cancel the producer task.
    func terminate() {
        let (consumer, producer, task) = state.withLock { state in
            state.terminated = true
            state.buffer.removeAll()
            defer {
                state.consumer = nil
                state.producer = nil
                state.producerTask = nil
            }
            return (state.consumer, state.producer, state.producerTask)
        }
        consumer?.resume(returning: nil)
        producer?.resume(throwing: CancellationError())
        task?.cancel()
    }
}
