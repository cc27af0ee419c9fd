import Synchronization
import Testing
import VestnikCore

@Suite(.timeLimit(.minutes(1))) struct SignalTests {
    @Test("the readiness latch holds waiters until it opens, lets later ones through, and lets a cancelled waiter go")
    func readinessLatch() async throws {
        let latch = ReadinessLatch()
        final class Flag: Sendable {
            let value = Atomic<Bool>(false)
            var isSet: Bool { value.load(ordering: .relaxed) }
        }
        let flag = Flag()
        let waiter = Task {
            await latch.wait()
            flag.value.store(true, ordering: .relaxed)
        }
        let cancelled = Task { await latch.wait() }
        try await Task.sleep(for: .milliseconds(50))
        #expect(!flag.isSet)  // still held
        cancelled.cancel()
        await cancelled.value  // returns although the latch is still closed
        #expect(!flag.isSet && !latch.isOpen)
        latch.open()
        await waiter.value
        #expect(flag.isSet)
        await latch.wait()  // already open: returns at once
        #expect(latch.isOpen)
    }

    @Test("the outbox signal wakes every waiter on a poke, keeps the poke for take(), and times out without one")
    func outboxSignal() async throws {
        let signal = BotOutboxSignal()
        let start = ContinuousClock.now
        await signal.wait(atMost: .milliseconds(50))
        #expect(ContinuousClock.now - start >= .milliseconds(40))
        #expect(!signal.take())
        let first = Task { await signal.wait(atMost: .seconds(30)) }
        let second = Task { await signal.wait(atMost: .seconds(30)) }
        try await Task.sleep(for: .milliseconds(20))
        let poked = ContinuousClock.now
        signal.poke()
        await first.value
        await second.value
        #expect(ContinuousClock.now - poked < .seconds(5))  // both woke, neither timed out
        #expect(signal.take())
        #expect(!signal.take())
        // A poke that came before the wait is not lost.
        signal.poke()
        let again = ContinuousClock.now
        await signal.wait(atMost: .seconds(30))
        #expect(ContinuousClock.now - again < .seconds(5))
    }
}
