import Testing
import VestnikCore

@Suite(.timeLimit(.minutes(1))) struct SignalTests {
    @Test("the readiness latch holds waiters until it opens, lets later ones through, and lets a cancelled waiter go")
    func readinessLatch() async throws {
        let latch = ReadinessLatch()
        let waiter = Task { await latch.wait() }
        let cancelled = Task { await latch.wait() }
        try await Task.sleep(for: .milliseconds(20))
        cancelled.cancel()
        await cancelled.value  // returns although the latch is still closed
        #expect(!latch.isOpen)
        latch.open()
        await waiter.value
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
        signal.poke()
        await first.value
        await second.value
        #expect(signal.take())
        #expect(!signal.take())
        // A poke that came before the wait is not lost.
        signal.poke()
        let again = ContinuousClock.now
        await signal.wait(atMost: .seconds(30))
        #expect(ContinuousClock.now - again < .seconds(5))
    }
}
